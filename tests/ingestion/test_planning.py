"""Unit tests of the pure parts: the version rules, names, secrets and policy documents."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from loadbay_ingestion import planning, policies, regions
from loadbay_ingestion.crypto import SecretBox
from loadbay_ingestion.remote import RemoteObject
from loadbay_ingestion.settings import IngestionSettings


def obj(key: str, size: int = 3, etag: str = "e1", storage: str = "STANDARD") -> RemoteObject:
    return RemoteObject(key, size, etag, storage)


OBJECTS = [
    obj("in/a.csv"), obj("in/b.CSV", etag="e2"), obj("in/c.txt"), obj("other/d.csv"),
    obj("in/cold.csv", storage="GLACIER"), obj("in/deep.csv", storage="DEEP_ARCHIVE"),
    obj("in/ia.csv", storage="STANDARD_IA"),
]  # fmt: skip


def keys(found: list[RemoteObject]) -> list[str]:
    return sorted(o.key for o in found)


def test_v16_fails_naming_every_non_standard_object() -> None:
    plan = planning.plan_objects(OBJECTS, prefix="in/", file_type="csv", version="1.6",
                                 ingested=set())  # fmt: skip
    assert plan.copy == [] and plan.failure is not None
    assert keys([o for o, _ in plan.failed]) == ["in/cold.csv", "in/deep.csv", "in/ia.csv"]


@pytest.mark.parametrize("version", ["1.7", "1.8"])
def test_v17_and_v18_skip_archives_and_take_the_rest(version: str) -> None:
    plan = planning.plan_objects(OBJECTS, prefix="in/", file_type="csv", version=version,
                                 ingested=set())  # fmt: skip
    assert plan.failure is None
    assert keys(plan.copy) == ["in/a.csv", "in/b.CSV", "in/ia.csv"]
    assert keys([o for o, _ in plan.skipped]) == ["in/cold.csv", "in/deep.csv"]


def test_same_name_size_and_etag_is_skipped_and_any_difference_is_ingested() -> None:
    ingested = {("a.csv", 3, "e1")}
    cases = {
        "same": obj("in/a.csv"),
        "other etag": obj("in/a.csv", etag="e9"),
        "other size": obj("in/a.csv", size=4),
        "renamed copy": obj("in/a_copy.csv"),
    }
    for why, o in cases.items():
        plan = planning.plan_objects([o], prefix="in/", file_type="csv", version="1.6",
                                     ingested=ingested)  # fmt: skip
        assert (plan.copy == []) == (why == "same"), why


def test_objects_copied_before_a_crash_are_not_copied_again() -> None:
    plan = planning.plan_objects([obj("in/a.csv"), obj("in/b.csv")], prefix="in/",
                                 file_type="csv", version="1.7", ingested=set(),
                                 copied_in_run={"in/a.csv"})  # fmt: skip
    assert keys(plan.copy) == ["in/b.csv"] and keys(plan.already_copied) == ["in/a.csv"]


def test_paths_names_and_skip_lz() -> None:
    assert planning.directory_prefix("/a/b/") == planning.directory_prefix("a/b") == "a/b/"
    assert planning.directory_prefix("") == ""
    assert planning.file_name(planning.name_in_dataset("a/b/sub/x.csv", "a/b/")) == "sub__x.csv"
    assert planning.skip_lz("1.8", "append") and not planning.skip_lz("1.8", "reload")
    assert not planning.skip_lz("1.7", "append")


def test_secrets_round_trip_with_a_passphrase_or_a_fernet_key() -> None:
    for key in ("any passphrase at all", Fernet.generate_key().decode()):
        box = SecretBox([key])
        token = box.seal("wJalrXUtnFEMI/K7MDENG")
        assert b"wJalrXUtnFEMI" not in token and box.open(token) == "wJalrXUtnFEMI/K7MDENG"
        assert "passphrase" not in repr(box)
    with pytest.raises(ValueError, match="cannot be decrypted with any of the configured keys"):
        SecretBox(["other"]).open(SecretBox(["one"]).seal("x"))
    SecretBox(IngestionSettings().encryption_keys())  # the dev default works in dev mode


def test_rotation_opens_with_any_key_and_seals_with_the_newest() -> None:
    old, new = SecretBox(["key one"]), SecretBox(["key two", "key one"])
    token = old.seal("wJalrXUtnFEMI/K7MDENG")
    assert new.open(token) == "wJalrXUtnFEMI/K7MDENG" and not new.is_current(token)
    resealed = new.reseal(token)
    assert new.is_current(resealed) and SecretBox(["key two"]).open(resealed) == new.open(token)
    assert new.is_current(new.seal("x"))
    with pytest.raises(ValueError, match="any of the configured keys"):
        old.open(resealed)  # the old key alone no longer opens it


def test_secret_keys_are_read_newest_first_as_a_list_or_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOADBAY_INGESTION_SECRET_KEY", "single")
    assert IngestionSettings().encryption_keys() == ["single"]
    monkeypatch.setenv("LOADBAY_INGESTION_SECRET_KEYS", "new, old")
    assert IngestionSettings().encryption_keys() == ["new", "old"]
    monkeypatch.setenv("LOADBAY_INGESTION_SECRET_KEYS", '["newer", "new"]')
    assert IngestionSettings().encryption_keys() == ["newer", "new"]


def test_settings_read_opt_in_regions_and_the_throttle_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert IngestionSettings().max_concurrent_loads == 90
    monkeypatch.setenv("LOADBAY_INGESTION_ENABLED_OPT_IN_REGIONS", "eu-south-1, ap-east-1")
    monkeypatch.setenv("LOADBAY_INGESTION_MAX_CONCURRENT_LOADS", "3")
    settings = IngestionSettings()
    assert settings.enabled_opt_in_regions == ["eu-south-1", "ap-east-1"]
    assert settings.max_concurrent_loads == 3
    assert regions.opt_in_problem("ap-east-1", settings.enabled_opt_in_regions) is None
    assert regions.opt_in_problem("af-south-1", settings.enabled_opt_in_regions) is not None
    assert regions.opt_in_problem("us-east-1", []) is None


def test_policies_use_the_partition_of_the_region() -> None:
    doc = policies.bucket_policy("b", "cn-north-1", "arn:aws-cn:iam::1:role/x")
    assert doc["Statement"][0]["Resource"] == "arn:aws-cn:s3:::b"
    key = policies.kms_key_policy("eu-west-1", "arn:aws:iam::1:role/x")["Statement"][0]
    assert key["Condition"]["StringEquals"]["kms:ViaService"] == "s3.eu-west-1.amazonaws.com"
