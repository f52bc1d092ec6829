"""Every keyvault operation from Python, against `kvrun vault serve` and the embedded default."""

import datetime as dt

import pytest

import kvrun


@pytest.fixture(params=["served", "embedded"])
def kv(request, served_vault, data_dir):
    if request.param == "served":
        vault = kvrun.Keyvault(served_vault["url"], ca_cert=served_vault["ca"], token=served_vault["token"])
    else:
        vault = kvrun.Keyvault(data_dir=data_dir)
    with vault:
        yield vault


def unique(name, kv):
    # The served vault is shared by the module; give each test its own names.
    return f"{name}-{abs(hash((name, kv.vault_url))) % 10**8}"


def test_set_get_versions_and_many(kv):
    name = unique("db-password", kv)
    first = kv.set_secret(name, "one", content_type="text/plain", tags={"team": "ml"})
    assert isinstance(first, kvrun.SecretProperties)
    assert first.name == name and first.content_type == "text/plain" and first.tags == {"team": "ml"}
    assert first.created.tzinfo is not None
    second = kv.set_secret(name, "two")
    assert kv.get_secret(name) == "two"
    assert kv.get_secret(name, first.version) == "one"
    full = kv.get_secret_with_properties(name)
    assert full.value == "two" and full.properties.version == second.version
    assert kv.get_secrets([name, "missing-x"]) == {name: "two", "missing-x": None}
    assert name in [p.name for p in kv.list_secrets()]
    assert sorted(p.version for p in kv.list_secret_versions(name)) == sorted([first.version, second.version])


def test_set_many_and_a_partial_failure(kv):
    a, b = unique("batch-a", kv), unique("batch-b", kv)
    done = kv.set_secrets({a: "A", b: "B"})
    assert set(done) == {a, b}
    with pytest.raises(kvrun.BatchError) as caught:
        kv.set_secrets({a: "A2", "bad name": "x"})
    assert set(caught.value.succeeded) == {a}
    assert isinstance(caught.value.failed["bad name"], kvrun.InvalidName)
    assert kv.get_secret(a) == "A2"


def test_update_delete_recover_purge_backup_restore(kv):
    name = unique("rotating", kv)
    kv.set_secret(name, "v1")
    expires = dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc)
    updated = kv.update_secret_properties(name, enabled=False, tags={"state": "off"}, expires=expires)
    assert updated.enabled is False and updated.expires == expires and updated.tags == {"state": "off"}
    kv.update_secret_properties(name, enabled=True)
    deleted = kv.delete_secret(name)
    assert isinstance(deleted, kvrun.DeletedSecret) and deleted.name == name
    assert kv.get_deleted_secret(name).name == name
    assert name in [d.name for d in kv.list_deleted_secrets()]
    with pytest.raises(kvrun.Conflict):
        kv.set_secret(name, "v2")
    kv.recover_deleted_secret(name)
    assert kv.get_secret(name) == "v1"
    backup = kv.backup_secret(name)
    kv.delete_secret(name)
    kv.purge_deleted_secret(name)
    with pytest.raises(kvrun.NotFound):
        kv.get_deleted_secret(name)
    assert kv.restore_secret(backup).name == name
    assert kv.get_secret(name) == "v1"


def test_errors_map_to_exceptions_and_never_carry_a_value(kv):
    name = unique("quiet", kv)
    kv.set_secret(name, "do-not-print-this")
    with pytest.raises(kvrun.NotFound) as missing:
        kv.get_secret(unique("absent", kv))
    assert missing.value.kind == "not-found" and missing.value.hint
    with pytest.raises(kvrun.InvalidName) as bad:
        kv.get_secret("no such/name")
    assert isinstance(bad.value, kvrun.InvalidArgument) and isinstance(bad.value, kvrun.KvrunError)
    with pytest.raises(kvrun.InvalidArgument):
        kv.set_secret(unique("too-many-tags", kv), "x", tags={f"t{i}": "v" for i in range(16)})
    secret = kv.get_secret_with_properties(name)
    for text in (repr(secret), str(secret), repr(secret.properties), repr(kv), str(missing.value), repr(missing.value)):
        assert "do-not-print-this" not in text


def test_a_wrong_token_is_unauthenticated(served_vault):
    with kvrun.Keyvault(served_vault["url"], ca_cert=served_vault["ca"], token="not-the-token") as kv:
        with pytest.raises(kvrun.Unauthenticated) as caught:
            kv.get_secret("anything")
    assert "not-the-token" not in str(caught.value)


def test_an_unreachable_vault_is_unavailable_with_a_network_kind():
    with kvrun.Keyvault("https://127.0.0.1:9", token="t") as kv:
        with pytest.raises(kvrun.Unavailable) as caught:
            kv.get_secret("anything")
    assert caught.value.kind == "connection-refused"
    assert caught.value.hint


def test_bad_configuration_is_a_config_error(tmp_path):
    with pytest.raises(kvrun.StorageError, match="missing.pem") as missing:
        kvrun.Keyvault("https://kv.vault.azure.net", ca_cert=tmp_path / "missing.pem", token="t")
    assert missing.value.kind == "io"
    with pytest.raises(kvrun.ConfigError):
        kvrun.Keyvault("https://kv.vault.azure.net", auth="kerberos")
    with pytest.raises(kvrun.ConfigError):
        kvrun.Keyvault("https://kv.vault.azure.net", token="has spaces")


def test_a_closed_keyvault_says_so(data_dir):
    kv = kvrun.Keyvault(data_dir=data_dir)
    kv.close()
    with pytest.raises(kvrun.ConfigError, match="closed"):
        kv.get_secret("x")


async def _async_roundtrip(kv, name):
    await kv.set_secret_async(name, "async-value")
    return await kv.get_secret_async(name), await kv.get_secrets_async([name])


def test_asyncio_forms(kv):
    import asyncio

    name = unique("async", kv)
    value, many = asyncio.run(_async_roundtrip(kv, name))
    assert value == "async-value" and many == {name: "async-value"}


def test_help_reads_well():
    doc = kvrun.Keyvault.__doc__
    assert "embedded local vault" in doc and "KvrunError" in doc
    assert kvrun.Keyvault.get_secret.__doc__


def test_more_threads_than_clients_each_get_served_and_close_ends_them(kv):
    """Each calling thread has a client of its own (at most 16 exist): 40 threads, more than
    that, all get their values while clients change hands; after close, every call says so."""
    import concurrent.futures
    import threading

    name = unique("threads", kv)
    kv.set_secret(name, "from-any-thread")
    barrier = threading.Barrier(40)

    def one(_):
        barrier.wait()
        return [kv.get_secret(name) for _ in range(3)]

    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        results = list(pool.map(one, range(40)))
    assert results == [["from-any-thread"] * 3] * 40
    assert kv.get_secrets([name]) == {name: "from-any-thread"}
    kv.close()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(kv.get_secret, name) for _ in range(4)]:
            with pytest.raises(kvrun.ConfigError, match="closed"):
                future.result()


def test_an_empty_data_dir_variable_means_the_platform_directory(tmp_path, monkeypatch):
    """`KVRUN_DATA_DIR=""` is unset, not the working directory."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("KVRUN_DATA_DIR", "")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with kvrun.Keyvault() as kv:
        kv.set_secret("where", "platform")
    assert list(work.iterdir()) == []
    assert (tmp_path / "data" / "kvrun" / "vault.db").is_file()


def test_a_missing_secret_of_the_embedded_vault_names_the_local_vault(data_dir):
    """The embedded vault's URL is served only while this process runs: the message names its
    data directory, as `kvrun secret get` does."""
    with kvrun.Keyvault(data_dir=data_dir) as kv:
        with pytest.raises(kvrun.NotFound) as missing:
            kv.get_secret("never-set-anywhere")
    assert str(missing.value) == f'secret "never-set-anywhere" was not found in the local vault ({data_dir}) (SecretNotFound)'
