"""What the loader needs of PostgreSQL, on whichever server the tests run against (18 by
default; LOADBAY_EMBEDDED_POSTGRES picks 16 or a directory of other binaries, such as 15)."""

from __future__ import annotations

import asyncpg

OWN_FUNCTION = """
SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.proname = 'pg_input_is_valid' AND n.nspname = 'loadbay_loader'
"""


async def test_value_checks_work_whatever_the_server_version(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        version = int(await conn.fetchval("SHOW server_version_num"))
        # Before 16 the loader's migration supplies pg_input_is_valid; from 16 on, never.
        assert await conn.fetchval(OWN_FUNCTION) == (1 if version < 160000 else 0)
        checks = {
            ("12", "int8"): True,
            ("12x", "int8"): False,
            ("99999999999999999999", "int8"): False,  # out of range
            ("1.5e3", "float8"): True,
            ("one", "float8"): False,
            ("2024-02-29T10:00:00Z", "timestamptz"): True,
            ("2024-02-30T10:00:00Z", "timestamptz"): False,
        }
        for (value, type_name), valid in checks.items():
            got = await conn.fetchval("SELECT pg_input_is_valid($1, $2)", value, type_name)
            assert got is valid, (value, type_name)
