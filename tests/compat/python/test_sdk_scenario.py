"""The official Python SDK (azure-keyvault-secrets, latest) against the kvrun local vault.

Pointing the SDK at the local vault needs three things: trust its CA (`connection_verify`),
a credential that returns the vault's token, and `verify_challenge_resource=False` (the
challenge names https://vault.azure.net, and the vault is on 127.0.0.1).
"""

import time
import uuid

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient


class StaticToken:
    """A credential that hands out the local vault's token."""

    def __init__(self, token):
        self.token = token

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def client(vault):
    return SecretClient(
        vault["url"],
        StaticToken(vault["token"]),
        verify_challenge_resource=False,
        connection_verify=vault["ca"],
    )


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_crud_versions_and_update(client):
    name = unique("py-crud")
    first = client.set_secret(name, "value-1", content_type="text/plain", tags={"env": "dev"})
    assert first.value == "value-1"
    assert first.properties.content_type == "text/plain"
    assert first.properties.tags == {"env": "dev"}
    assert first.properties.enabled is True
    second = client.set_secret(name, "value-2")
    assert second.properties.version != first.properties.version
    assert client.get_secret(name).value == "value-2"
    assert client.get_secret(name, first.properties.version).value == "value-1"
    versions = {p.version for p in client.list_properties_of_secret_versions(name)}
    assert versions == {first.properties.version, second.properties.version}

    updated = client.update_secret_properties(name, content_type="application/json", tags={"a": "b"})
    assert updated.content_type == "application/json"
    assert updated.tags == {"a": "b"}
    assert updated.version == second.properties.version

    client.update_secret_properties(name, second.properties.version, enabled=False)
    with pytest.raises(HttpResponseError) as disabled:
        client.get_secret(name)
    assert disabled.value.status_code == 403
    assert "SecretDisabled" in str(disabled.value) or "disabled" in str(disabled.value)
    listed = [p for p in client.list_properties_of_secrets() if p.name == name]
    assert listed and listed[0].enabled is False
    client.update_secret_properties(name, second.properties.version, enabled=True)
    assert client.get_secret(name).value == "value-2"


def test_paging_with_small_pages(client):
    prefix = unique("py-page")
    names = {f"{prefix}-{i}" for i in range(7)}
    for n in names:
        client.set_secret(n, "v")
    pages = list(client.list_properties_of_secrets(max_page_size=2).by_page())
    seen = {p.name for page in pages for p in page}
    assert names <= seen
    assert len(pages) > 3


def test_soft_delete_recover_purge(client):
    name = unique("py-del")
    client.set_secret(name, "keep-me")
    deleted = client.begin_delete_secret(name, _polling_interval=0.1).result()
    assert deleted.name == name
    assert deleted.recovery_id.endswith(f"/deletedsecrets/{name}")
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    assert client.get_deleted_secret(name).name == name
    assert name in {d.name for d in client.list_deleted_secrets()}
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    with pytest.raises(ResourceExistsError) as conflict:
        client.set_secret(name, "again")
    assert "ObjectIsDeletedButRecoverable" in str(conflict.value)

    recovered = client.begin_recover_deleted_secret(name, _polling_interval=0.1).result()
    assert recovered.name == name
    assert client.get_secret(name).value == "keep-me"

    client.begin_delete_secret(name, _polling_interval=0.1).result()
    client.purge_deleted_secret(name)
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret(name)
    client.set_secret(name, "reborn")
    assert client.get_secret(name).value == "reborn"


def test_backup_and_restore(client):
    name = unique("py-bak")
    client.set_secret(name, "v1")
    client.set_secret(name, "v2")
    blob = client.backup_secret(name)
    assert isinstance(blob, bytes) and len(blob) > 0
    with pytest.raises(ResourceExistsError):
        client.restore_secret_backup(blob)
    client.begin_delete_secret(name, _polling_interval=0.1).result()
    client.purge_deleted_secret(name)
    restored = client.restore_secret_backup(blob)
    assert restored.name == name
    assert client.get_secret(name).value == "v2"
    assert len(list(client.list_properties_of_secret_versions(name))) == 2
    with pytest.raises(HttpResponseError) as corrupt:
        client.restore_secret_backup(b"not a backup")
    assert corrupt.value.status_code == 400


def test_errors_are_read_as_the_right_exceptions(client):
    with pytest.raises(ResourceNotFoundError) as missing:
        client.get_secret(unique("py-missing"))
    assert missing.value.status_code == 404
    assert "SecretNotFound" in str(missing.value)
    with pytest.raises(HttpResponseError) as bad:
        client.set_secret("bad_name!", "v")
    assert bad.value.status_code == 400
    assert "BadParameter" in str(bad.value)
    with pytest.raises(HttpResponseError) as too_big:
        client.set_secret(unique("py-big"), "x" * (25 * 1024 + 1))
    assert too_big.value.status_code == 400


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=["default", "public-url"])
def named_vault(request):
    """The default served vault (https://localhost:PORT), and one served under another name
    its certificate covers (`--public-url https://127.0.0.1:PORT`)."""
    import local_vault

    if request.param == "default":
        with local_vault.served_vault(local_vault.kvrun_binary()) as served:
            yield served
    else:
        port = _free_port()
        url = f"https://127.0.0.1:{port}"
        with local_vault.served_vault(local_vault.kvrun_binary(), addr=f"127.0.0.1:{port}", public_url=url) as served:
            assert served["url"] == url
            yield served


def test_every_id_recovery_id_and_next_link_starts_with_the_clients_vault_url(named_vault):
    from azure.keyvault.secrets import KeyVaultSecretIdentifier

    url = named_vault["url"]
    client = SecretClient(url, StaticToken(named_vault["token"]), verify_challenge_resource=False,
                          connection_verify=named_vault["ca"])
    assert client.vault_url == url
    seen = []

    def record(response):
        body = response.http_response.text()
        if body:
            seen.append(response.http_response.json())

    name = unique("py-ids")
    for i in range(3):
        created = client.set_secret(f"{name}-{i}", "v", raw_response_hook=record)
        assert KeyVaultSecretIdentifier(created.id).vault_url == client.vault_url
    got = client.get_secret(f"{name}-0", raw_response_hook=record)
    assert KeyVaultSecretIdentifier(got.id).vault_url == client.vault_url
    listed = list(client.list_properties_of_secrets(max_page_size=1, raw_response_hook=record))
    assert len(listed) >= 3
    versions = list(client.list_properties_of_secret_versions(f"{name}-0", raw_response_hook=record))
    deleted = client.begin_delete_secret(f"{name}-1", _polling_interval=0.1).result()
    assert KeyVaultSecretIdentifier(deleted.recovery_id).vault_url == client.vault_url
    list(client.list_deleted_secrets(max_page_size=1, raw_response_hook=record))
    for item in [*listed, *versions]:
        assert KeyVaultSecretIdentifier(item.id).vault_url == client.vault_url, item.id

    links = [page["nextLink"] for page in seen if page.get("nextLink")]
    ids = [page["id"] for page in seen if "id" in page]
    ids += [item["id"] for page in seen for item in page.get("value", []) if isinstance(page.get("value"), list)]
    recovery = [item["recoveryId"] for page in seen for item in page.get("value", []) if isinstance(page.get("value"), list) and "recoveryId" in item]
    assert len(links) >= 2 and len(ids) >= 8 and recovery, (links, ids, recovery)
    for named in [*links, *ids, *recovery]:
        assert named.startswith(url + "/"), (named, url)
