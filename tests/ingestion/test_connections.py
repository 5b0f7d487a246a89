"""Connections on real servers: secrets, authorization, the connection test, policies,
regions, versions."""

from __future__ import annotations

import asyncpg
import httpx

from loadbay_ingestion.settings import IngestionSettings
from tests.conftest import User
from tests.ingestion.conftest import REGION, Keys, Remote, bind, create_connection, unique


async def test_access_keys_are_encrypted_at_rest_and_never_returned(
    api: httpx.AsyncClient, alice: User, remote: Remote, db: asyncpg.Pool
) -> None:
    made = await create_connection(api, alice, remote, remote.bucket())
    name = made["name"]
    secret, key_id = remote.admin.secret_access_key, remote.admin.access_key_id
    shown = [
        (await api.post("/connections", json={}, headers=alice.headers)).text,
        (await api.get("/connections", headers=alice.headers)).text,
        (await api.get(f"/connections/{name}", headers=alice.headers)).text,
        (await api.patch(f"/connections/{name}", json={"description": "d"},
                         headers=alice.headers)).text,
        (await api.post(f"/connections/{name}/test", headers=alice.headers)).text,
        (await api.get("/openapi.json")).text,
    ]  # fmt: skip
    for text in [*shown, str(made)]:
        assert secret not in text and key_id not in text
    assert made["has_access_keys"] is True
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM connections WHERE name = $1", name)
    stored = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
    assert secret.encode() not in stored and key_id.encode() not in stored
    assert row["secret_access_key_enc"].startswith(b"gAAAAA")  # a Fernet token


async def test_names_are_unique_per_owner_and_fields_are_validated(
    api: httpx.AsyncClient, alice: User, bob: User, remote: Remote
) -> None:
    made = await create_connection(api, alice, remote, remote.bucket())
    again = await create_connection(api, alice, remote, made["bucket"], name=made["name"],
                                    expect=409)  # fmt: skip
    assert "you have a connection named" in again["message"]
    # Another user's name tells bob nothing: he gets his own connection of that name.
    bobs = await create_connection(api, bob, remote, made["bucket"], name=made["name"])
    assert bobs["owner_id"] == bob.user_id
    await create_connection(api, alice, remote, "b", expect=422)  # not a bucket name
    await create_connection(api, alice, remote, "bucket-x", access_type="ftp", expect=422)
    await create_connection(api, alice, remote, "bucket-x", connection_type="jdbc", expect=422)
    await create_connection(api, alice, remote, "bucket-x", version="1.5", expect=422)
    no_keys = await api.post(
        "/connections",
        json={"name": unique("c"), "bucket": "bucket-x", "access_type": "access_keys",
              "region": REGION},
        headers=alice.headers,
    )  # fmt: skip
    assert no_keys.status_code == 400 and "needs access_key_id" in no_keys.json()["message"]
    view = await create_connection(
        api,
        alice,
        remote,
        "bucket-x",
        description="nightly exports",
        authorized_users=[bob.user_id],
    )
    assert view["connection_type"] == "s3" and view["version"] == "1.8"
    assert view["description"] == "nightly exports" and view["authorized_users"] == [bob.user_id]


async def test_only_the_owner_and_authorized_users_see_a_connection(
    api: httpx.AsyncClient, alice: User, bob: User, remote: Remote, settings_for_users: list[User]
) -> None:
    (carol,) = settings_for_users
    made = await create_connection(api, alice, remote, remote.bucket(),
                                   authorized_users=[bob.user_id])  # fmt: skip
    name = made["name"]
    dataset = await bind(api, alice, name)
    for path in (f"/connections/{name}", f"/connections/{name}/bindings",
                 f"/bindings/{dataset}", f"/bindings/{dataset}/runs"):  # fmt: skip
        assert (await api.get(path, headers=carol.headers)).status_code == 404, path
        assert (await api.get(path, headers=bob.headers)).status_code == 200, path
    assert (await api.post(f"/connections/{name}/test", headers=carol.headers)).status_code == 404
    assert (await api.post(f"/bindings/{dataset}/runs", headers=carol.headers)).status_code == 404
    assert name not in (await api.get("/connections", headers=carol.headers)).text
    assert name in (await api.get("/connections", headers=bob.headers)).text
    # Authorized users use the connection; only the owner changes it.
    patched = await api.patch(f"/connections/{name}", json={"description": "x"},
                              headers=bob.headers)  # fmt: skip
    assert patched.status_code == 403
    assert (await api.delete(f"/connections/{name}", headers=bob.headers)).status_code == 403
    assert (await api.get("/connections")).status_code == 401  # no token


async def test_update_and_delete(
    api: httpx.AsyncClient, alice: User, bob: User, remote: Remote
) -> None:
    made = await create_connection(api, alice, remote, remote.bucket())
    name = made["name"]
    patched = await api.patch(
        f"/connections/{name}",
        json={"description": "new", "authorized_users": [bob.user_id], "region": "eu-west-1"},
        headers=alice.headers,
    )
    assert patched.status_code == 200, patched.text
    view = patched.json()
    assert (view["description"], view["authorized_users"], view["region"]) == (
        "new", [bob.user_id], "eu-west-1",
    )  # fmt: skip
    assert (await api.patch(f"/connections/{name}", json={"version": "1.6"},
                            headers=alice.headers)).status_code == 422  # fmt: skip
    dataset = await bind(api, alice, name)
    refused = await api.delete(f"/connections/{name}", headers=alice.headers)
    assert refused.status_code == 409 and dataset in refused.json()["message"]
    assert (await api.delete(f"/bindings/{dataset}", headers=alice.headers)).status_code == 204
    assert (await api.delete(f"/connections/{name}", headers=alice.headers)).status_code == 204
    assert (await api.get(f"/connections/{name}", headers=alice.headers)).status_code == 404


async def _test(api: httpx.AsyncClient, user: User, name: str) -> dict[str, object]:
    response = await api.post(f"/connections/{name}/test", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_connection_test_says_why_access_fails(
    api: httpx.AsyncClient, alice: User, remote: Remote
) -> None:
    bucket = remote.bucket()
    remote.s3.put_object(Bucket=bucket, Key="exports/in/a.csv", Body=b"id\n1\n")
    ok = await create_connection(api, alice, remote, bucket)
    assert await _test(api, alice, ok["name"]) == {
        "bucket": bucket, "can_list": True, "can_read": True, "ok": True, "reason": None,
    }  # fmt: skip
    wrong_key = await create_connection(
        api, alice, remote, bucket, keys=Keys("AKIAWRONGWRONGWRONG1", "nope")
    )
    result = await _test(api, alice, wrong_key["name"])
    assert result["ok"] is False and "wrong credentials" in str(result["reason"])
    assert "InvalidAccessKeyId" in str(result["reason"])
    wrong_secret = await create_connection(
        api, alice, remote, bucket, keys=Keys(remote.admin.access_key_id, "not-the-secret")
    )
    result = await _test(api, alice, wrong_secret["name"])
    assert result["ok"] is False and "SignatureDoesNotMatch" in str(result["reason"])
    missing = await create_connection(api, alice, remote, "no-such-bucket-here")
    result = await _test(api, alice, missing["name"])
    assert result["ok"] is False and "does not exist" in str(result["reason"])
    lister = await create_connection(api, alice, remote, bucket, keys=remote.lister)
    result = await _test(api, alice, lister["name"])
    assert (result["can_list"], result["can_read"], result["ok"]) == (True, False, False)
    assert "access denied" in str(result["reason"])
    empty = await create_connection(api, alice, remote, remote.bucket())
    result = await _test(api, alice, empty["name"])
    assert result["ok"] is True and result["can_read"] is None


async def test_bucket_policy_connections_get_policies_granting_only_read(
    api: httpx.AsyncClient, alice: User, remote: Remote, ingestion_settings: IngestionSettings
) -> None:
    bucket = remote.bucket()
    remote.s3.put_object(Bucket=bucket, Key="x.csv", Body=b"id\n1\n")
    kms = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    made = await create_connection(
        api, alice, remote, bucket, access_type="bucket_policy", kms_key_arn=kms
    )
    assert made["has_access_keys"] is False
    response = await api.get(f"/connections/{made['name']}/bucket-policy", headers=alice.headers)
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    statements = response.json()["Statement"]
    principal = {"AWS": ingestion_settings.principal_arn}
    assert [(s["Effect"], s["Principal"], s["Action"], s["Resource"]) for s in statements] == [
        ("Allow", principal, "s3:ListBucket", f"arn:aws:s3:::{bucket}"),
        ("Allow", principal, "s3:GetObject", f"arn:aws:s3:::{bucket}/*"),
    ]
    key_policy = await api.get(f"/connections/{made['name']}/kms-key-policy", headers=alice.headers)
    assert key_policy.status_code == 200
    (statement,) = key_policy.json()["Statement"]
    assert (statement["Principal"], statement["Action"]) == (principal, "kms:Decrypt")
    # loadbay reads the bucket as its own principal (the settings' credentials).
    assert (await _test(api, alice, made["name"]))["ok"] is True
    plain = await create_connection(api, alice, remote, bucket, access_type="bucket_policy")
    assert (await api.get(f"/connections/{plain['name']}/kms-key-policy",
                          headers=alice.headers)).status_code == 404  # fmt: skip
    with_keys = await create_connection(api, alice, remote, bucket, keys=None)
    assert (await api.get(f"/connections/{with_keys['name']}/bucket-policy",
                          headers=alice.headers)).status_code == 404  # fmt: skip
    refused = await api.post(
        "/connections",
        json={"name": unique("c"), "bucket": bucket, "access_type": "bucket_policy",
              "region": REGION, "access_key_id": "A", "secret_access_key": "B"},
        headers=alice.headers,
    )  # fmt: skip
    assert refused.status_code == 400 and "takes no access keys" in refused.json()["message"]


async def test_regions_are_validated_and_opt_in_regions_must_be_enabled(
    api: httpx.AsyncClient, alice: User, remote: Remote
) -> None:
    bucket = remote.bucket()
    unknown = await create_connection(api, alice, remote, bucket, region="moon-west-1", expect=422)
    assert "unknown AWS region" in str(unknown)
    disabled = await create_connection(api, alice, remote, bucket, region="af-south-1")
    result = await _test(api, alice, disabled["name"])
    assert result["ok"] is False
    assert "af-south-1 is an opt-in region that is not enabled" in str(result["reason"])
    enabled = await create_connection(api, alice, remote, bucket, region="eu-south-1")
    assert (await _test(api, alice, enabled["name"]))["ok"] is True


async def test_upgrade_to_the_next_version_and_downgrade_back_with_history(
    api: httpx.AsyncClient, alice: User, remote: Remote
) -> None:
    made = await create_connection(api, alice, remote, remote.bucket(), version="1.6")
    name = made["name"]
    assert (made["upgrade_to"], made["downgrade_to"]) == ("1.7", [])

    async def change(action: str, version: str, expect: int = 200) -> dict[str, object]:
        response = await api.post(
            f"/connections/{name}/{action}", json={"version": version}, headers=alice.headers
        )
        assert response.status_code == expect, response.text
        return response.json()

    assert "only be upgraded to the next version, 1.7" in str(await change("upgrade", "1.8", 409))
    assert "was upgraded from" in str(await change("downgrade", "1.6", 409))  # never upgraded
    await change("upgrade", "1.7")
    view = await change("upgrade", "1.8")
    expected = ("1.8", None, ["1.6", "1.7"])
    assert (view["version"], view["upgrade_to"], view["downgrade_to"]) == expected
    assert "latest version" in str(await change("upgrade", "1.8", 409))
    await change("downgrade", "1.7")
    view = await change("downgrade", "1.6")
    assert view["version"] == "1.6"
    history = [(h["action"], h["from_version"], h["to_version"])
               for h in view["version_history"]]  # type: ignore[attr-defined]  # fmt: skip
    assert history == [
        ("create", None, "1.6"), ("upgrade", "1.6", "1.7"), ("upgrade", "1.7", "1.8"),
        ("downgrade", "1.8", "1.7"), ("downgrade", "1.7", "1.6"),
    ]  # fmt: skip
    # Created at 1.7: it was never upgraded from 1.6, so it cannot go there.
    other = await create_connection(api, alice, remote, remote.bucket(), version="1.7")
    name = other["name"]
    assert "cannot be downgraded to 1.6" in str(await change("downgrade", "1.6", 409))
