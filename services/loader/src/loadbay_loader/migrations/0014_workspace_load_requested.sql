-- load.requested 1.0 became workspace.load.requested 2.0: the ledger names a load by the
-- type of the request it answers, so older rows take the new name too.
UPDATE loads SET request_type = 'workspace.load.requested' WHERE request_type = 'load.requested';
