"""The workspace path (automated data distribution): a source file routed by client id into
the tables of the data product's workspaces, one transaction per workspace and dataset."""
