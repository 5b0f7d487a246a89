"""Typed warehouse tables and the COPY into them, shared by the reload and workspace paths:
PostgreSQL types and checks every value; an error is placed at its file, line and column."""
