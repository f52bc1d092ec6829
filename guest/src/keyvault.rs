//! Key Vault operations: requests out, WIT types back.

use crate::bindings::kvrun::secrets::types::{
    DeletedSecret, Error, PropertyUpdate, Secret, SecretInput, SecretProperties, ServiceError,
    SetOptions,
};
use crate::config::Config;
use crate::http::{self, Failure, Request, Response, Verb};
use crate::rules;
use crate::wire;

/// Most pages a listing follows before giving up (25 per page: 2.5 million items).
const MAX_PAGES: usize = 100_000;

/// A vault reached through `wasi:http`.
pub struct Vault {
    config: Config,
}

impl Vault {
    /// The vault that the component's environment names.
    pub fn from_env() -> Result<Vault, Error> {
        Ok(Vault {
            config: Config::from_env()?,
        })
    }

    fn path(&self, path: &str) -> String {
        format!("{path}?api-version={}", self.config.api_version)
    }

    fn set_request(&self, name: &str, value: &str, options: &SetOptions) -> Result<Request, Error> {
        rules::check_set(name, value, options)?;
        let body = wire::SetBody {
            value,
            content_type: options.content_type.as_deref(),
            tags: options
                .tags
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        };
        Ok(Request {
            verb: Verb::Put,
            path_and_query: self.path(&format!("/secrets/{name}")),
            body: Some(serde_json::to_vec(&body).expect("a set body serialises")),
        })
    }

    fn get_request(&self, name: &str, version: Option<&str>) -> Result<Request, Error> {
        rules::check_name(name)?;
        let path = match version {
            Some(version) => {
                rules::check_version(version)?;
                format!("/secrets/{name}/{version}")
            }
            None => format!("/secrets/{name}"),
        };
        Ok(Request {
            verb: Verb::Get,
            path_and_query: self.path(&path),
            body: None,
        })
    }

    /// `PUT /secrets/{name}`.
    pub fn set_secret(
        &self,
        name: &str,
        value: &str,
        options: &SetOptions,
    ) -> Result<SecretProperties, Error> {
        let request = self.set_request(name, value, options)?;
        let response = self.send(request, name)?;
        Ok(properties(parse_bundle(&response, "secret bundle")?, true))
    }

    /// Concurrent `PUT`s; invalid entries fail alone, before anything is sent.
    pub fn set_secrets(&self, secrets: &[SecretInput]) -> Vec<Result<SecretProperties, Error>> {
        let prepared: Vec<Result<Request, Error>> = secrets
            .iter()
            .map(|s| self.set_request(&s.name, &s.value, &s.options))
            .collect();
        let to_send: Vec<Request> = prepared
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let mut sent = http::send_all(&self.config, &to_send).into_iter();
        prepared
            .into_iter()
            .zip(secrets)
            .map(|(prepared, input)| {
                prepared?;
                let outcome = sent.next().expect("one outcome per sent request");
                let response = self.answer(outcome, &input.name)?;
                Ok(properties(parse_bundle(&response, "secret bundle")?, true))
            })
            .collect()
    }

    /// `GET /secrets/{name}[/{version}]`.
    pub fn get_secret(&self, name: &str, version: Option<&str>) -> Result<Secret, Error> {
        let request = self.get_request(name, version)?;
        let response = self.send(request, name)?;
        secret(parse_bundle(&response, "secret bundle")?)
    }

    /// Concurrent `GET`s; 404 gives `None`, any other failure fails the call.
    pub fn get_secrets(&self, names: &[String]) -> Result<Vec<Option<String>>, Error> {
        let requests = names
            .iter()
            .map(|name| self.get_request(name, None))
            .collect::<Result<Vec<_>, _>>()?;
        http::send_all(&self.config, &requests)
            .into_iter()
            .zip(names)
            .map(|(outcome, name)| match self.answer(outcome, name) {
                Ok(response) => Ok(Some(
                    secret(parse_bundle(&response, "secret bundle")?)?.value,
                )),
                Err(Error::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// `GET /secrets`, every page.
    pub fn list_secrets(&self) -> Result<Vec<SecretProperties>, Error> {
        self.list(&self.path("/secrets"), "the secret list")
    }

    /// `GET /secrets/{name}/versions`, every page.
    pub fn list_secret_versions(&self, name: &str) -> Result<Vec<SecretProperties>, Error> {
        rules::check_name(name)?;
        self.list(&self.path(&format!("/secrets/{name}/versions")), name)
    }

    /// `DELETE /secrets/{name}`.
    pub fn delete_secret(&self, name: &str) -> Result<DeletedSecret, Error> {
        rules::check_name(name)?;
        let response = self.send(
            self.request(Verb::Delete, &format!("/secrets/{name}"), None),
            name,
        )?;
        Ok(deleted(parse_bundle(&response, "deleted secret bundle")?))
    }

    /// `PATCH /secrets/{name}/{version}` (an empty version is the latest).
    pub fn update_secret_properties(
        &self,
        name: &str,
        version: Option<&str>,
        update: &PropertyUpdate,
    ) -> Result<SecretProperties, Error> {
        rules::check_name(name)?;
        if let Some(version) = version {
            rules::check_version(version)?;
        }
        rules::check_properties(
            name,
            update.content_type.as_deref(),
            update.tags.as_deref().unwrap_or(&[]),
        )?;
        let attributes =
            (update.enabled.is_some() || update.not_before.is_some() || update.expires.is_some())
                .then_some(wire::UpdateAttributes {
                    enabled: update.enabled,
                    nbf: update.not_before,
                    exp: update.expires,
                });
        let body = wire::UpdateBody {
            content_type: update.content_type.as_deref(),
            attributes,
            tags: update
                .tags
                .as_ref()
                .map(|tags| tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
        };
        let path = format!("/secrets/{name}/{}", version.unwrap_or(""));
        let body = serde_json::to_vec(&body).expect("an update body serialises");
        let response = self.send(self.request(Verb::Patch, &path, Some(body)), name)?;
        Ok(properties(parse_bundle(&response, "secret bundle")?, true))
    }

    /// `GET /deletedsecrets/{name}`.
    pub fn get_deleted_secret(&self, name: &str) -> Result<DeletedSecret, Error> {
        rules::check_name(name)?;
        let response = self.send(
            self.request(Verb::Get, &format!("/deletedsecrets/{name}"), None),
            name,
        )?;
        Ok(deleted(parse_bundle(&response, "deleted secret bundle")?))
    }

    /// `GET /deletedsecrets`, every page.
    pub fn list_deleted_secrets(&self) -> Result<Vec<DeletedSecret>, Error> {
        Ok(self
            .pages(&self.path("/deletedsecrets"), "the deleted secret list")?
            .into_iter()
            .map(deleted)
            .collect())
    }

    /// `POST /deletedsecrets/{name}/recover`.
    pub fn recover_deleted_secret(&self, name: &str) -> Result<SecretProperties, Error> {
        rules::check_name(name)?;
        let path = format!("/deletedsecrets/{name}/recover");
        let response = self.send(self.request(Verb::Post, &path, None), name)?;
        Ok(properties(parse_bundle(&response, "secret bundle")?, true))
    }

    /// `DELETE /deletedsecrets/{name}` (204).
    pub fn purge_deleted_secret(&self, name: &str) -> Result<(), Error> {
        rules::check_name(name)?;
        self.send(
            self.request(Verb::Delete, &format!("/deletedsecrets/{name}"), None),
            name,
        )?;
        Ok(())
    }

    /// `POST /secrets/{name}/backup`.
    pub fn backup_secret(&self, name: &str) -> Result<String, Error> {
        rules::check_name(name)?;
        let response = self.send(
            self.request(Verb::Post, &format!("/secrets/{name}/backup"), None),
            name,
        )?;
        let blob: wire::Blob = parse_json(&response.body, "backup answer")?;
        Ok(blob.value)
    }

    /// `POST /secrets/restore`.
    pub fn restore_secret(&self, backup: &str) -> Result<SecretProperties, Error> {
        rules::check_backup(backup)?;
        let body = serde_json::to_vec(&wire::Blob {
            value: backup.to_string(),
        })
        .expect("a blob serialises");
        let response = self.send(
            self.request(Verb::Post, "/secrets/restore", Some(body)),
            "the restored secret",
        )?;
        Ok(properties(parse_bundle(&response, "secret bundle")?, true))
    }

    fn request(&self, verb: Verb, path: &str, body: Option<Vec<u8>>) -> Request {
        Request {
            verb,
            path_and_query: self.path(path),
            body,
        }
    }

    fn list(&self, first: &str, subject: &str) -> Result<Vec<SecretProperties>, Error> {
        let versioned = first.contains("/versions");
        Ok(self
            .pages(first, subject)?
            .into_iter()
            .map(|b| properties(b, versioned))
            .collect())
    }

    /// Every item of a listing, following `nextLink` until it is null.
    fn pages(&self, first: &str, subject: &str) -> Result<Vec<wire::Bundle>, Error> {
        let mut items = Vec::new();
        let mut next = Some(first.to_string());
        let mut pages = 0;
        while let Some(path_and_query) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(Error::Transport(format!(
                    "the vault's listing did not end after {MAX_PAGES} pages"
                )));
            }
            let request = Request {
                verb: Verb::Get,
                path_and_query,
                body: None,
            };
            let response = self.send(request, subject)?;
            let page: wire::Page = parse_json(&response.body, "page of a listing")?;
            items.extend(page.value);
            next = match page.next_link {
                Some(link) if !link.is_empty() => Some(self.next_page(&link)?),
                _ => None,
            };
        }
        Ok(items)
    }

    /// Turns an absolute `nextLink` into a path and query on the vault's origin, with our
    /// `api-version` (the service's may differ).
    fn next_page(&self, link: &str) -> Result<String, Error> {
        let (scheme, rest) = link.split_once("://").ok_or_else(|| bad_link(link))?;
        let (authority, path_and_query) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => return Err(bad_link(link)),
        };
        let default_port = if scheme.eq_ignore_ascii_case("https") {
            ":443"
        } else {
            ":80"
        };
        let ours = &self.config.authority;
        let same_origin =
            scheme.eq_ignore_ascii_case(if self.config.https { "https" } else { "http" })
                && (authority.eq_ignore_ascii_case(ours)
                    || authority.eq_ignore_ascii_case(&format!("{ours}{default_port}"))
                    || authority
                        .strip_suffix(default_port)
                        .is_some_and(|a| a.eq_ignore_ascii_case(ours)));
        if !same_origin {
            return Err(Error::Transport(format!(
                "the vault's nextLink points to another origin ({scheme}://{authority}); not following it"
            )));
        }
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut params: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("api-version="))
            .collect();
        let api = format!("api-version={}", self.config.api_version);
        params.insert(0, &api);
        Ok(format!("{path}?{}", params.join("&")))
    }

    fn send(&self, request: Request, subject: &str) -> Result<Response, Error> {
        self.answer(http::send(&self.config, request), subject)
    }

    /// Maps a transport outcome and a status onto a success response or an [`Error`].
    fn answer(&self, outcome: Result<Response, Failure>, subject: &str) -> Result<Response, Error> {
        match outcome {
            Err(Failure::Denied) => Err(Error::Denied(format!(
                "the host's network policy denied the request to {} (HTTP-request-denied)",
                self.config.origin()
            ))),
            Err(Failure::Transport(why) | Failure::Fatal(why)) => Err(Error::Transport(format!(
                "could not reach {}: {why}",
                self.config.origin()
            ))),
            Ok(response) if (200..300).contains(&response.status) => Ok(response),
            Ok(response) => Err(status_error(&response, subject, &self.config.origin())),
        }
    }
}

fn bad_link(link: &str) -> Error {
    let shown: String = link.chars().take(200).collect();
    Error::Transport(format!(
        "the vault's nextLink {shown:?} is not an absolute URL"
    ))
}

/// Maps an error status and the Key Vault error envelope onto the WIT error.
fn status_error(response: &Response, subject: &str, origin: &str) -> Error {
    let envelope: Option<wire::ErrorEnvelope> = serde_json::from_slice(&response.body).ok();
    let (code, message) = match &envelope {
        Some(e) => (
            e.error.specific_code().to_string(),
            e.error.message.trim().to_string(),
        ),
        None => (String::new(), String::new()),
    };
    let status = response.status;
    let detail = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {code}: {message}")
    };
    match status {
        400 => Error::InvalidArgument(format!(
            "the vault refused the request for {subject:?}: {detail}"
        )),
        401 => Error::Unauthenticated(format!(
            "the vault did not accept the credential ({detail}); check the token the host uses"
        )),
        403 => Error::Denied(format!("the vault denied access to {subject:?}: {detail}")),
        404 => Error::NotFound(format!(
            "secret {subject:?} was not found in {origin}{}",
            if code.is_empty() {
                String::new()
            } else {
                format!(" ({code})")
            }
        )),
        409 => Error::Conflict(format!("conflict on secret {subject:?}: {detail}")),
        429 => Error::Unavailable(format!("{origin} kept throttling the requests ({detail})")),
        408 | 500 | 502 | 503 | 504 => {
            Error::Unavailable(format!("{origin} kept failing ({detail})"))
        }
        _ => Error::Service(ServiceError {
            status,
            code,
            message: if message.is_empty() {
                format!("HTTP {status}")
            } else {
                message
            },
        }),
    }
}

fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, Error> {
    // serde's messages can quote the input, which may hold a value: report only where.
    serde_json::from_slice(body).map_err(|e| {
        Error::Transport(format!(
            "the vault's answer is not a valid {what} ({:?} error at line {}, column {}; {} bytes)",
            e.classify(),
            e.line(),
            e.column(),
            body.len()
        ))
    })
}

fn parse_bundle(response: &Response, what: &str) -> Result<wire::Bundle, Error> {
    parse_json(&response.body, what)
}

fn deleted(bundle: wire::Bundle) -> DeletedSecret {
    DeletedSecret {
        recovery_id: bundle.recovery_id.clone(),
        deleted_date: bundle.deleted_date,
        scheduled_purge_date: bundle.scheduled_purge_date,
        properties: properties(bundle, true),
    }
}

fn secret(bundle: wire::Bundle) -> Result<Secret, Error> {
    let mut bundle = bundle;
    let value = bundle
        .value
        .take()
        .ok_or_else(|| Error::Transport("the vault's answer has no value for the secret".into()))?;
    Ok(Secret {
        properties: properties(bundle, true),
        value,
    })
}

/// Builds properties from a bundle; the name and version come from the id,
/// `https://HOST/secrets/NAME[/VERSION]`.
fn properties(bundle: wire::Bundle, with_version: bool) -> SecretProperties {
    let path = bundle
        .id
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, path)| path)
        .unwrap_or("");
    let mut segments = path.split('/').skip(1);
    let name = segments.next().unwrap_or("").to_string();
    let version = segments
        .next()
        .filter(|v| with_version && !v.is_empty())
        .map(str::to_string);
    let attributes = bundle.attributes;
    SecretProperties {
        name,
        version,
        id: bundle.id,
        content_type: bundle.content_type,
        enabled: attributes.enabled.unwrap_or(true),
        not_before: attributes.nbf,
        expires: attributes.exp,
        created: attributes.created,
        updated: attributes.updated,
        tags: bundle.tags.into_iter().collect(),
    }
}
