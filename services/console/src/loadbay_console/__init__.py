"""The loadbay web console: pages for reload datasets, bulk loads, S3 connections and data
products, rendered on the server from the services' public HTTP APIs (a backend-for-frontend:
it holds the signed-in user's token and never reads a database)."""
