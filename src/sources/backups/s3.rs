//! Lists an S3-compatible bucket with ListObjectsV2 (path-style, header-signed, paginated) and
//! never downloads an object. The XML is read by a few tag lookups: the listing has a fixed,
//! flat shape and this keeps the dependency tree as it is.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::sigv4;
use crate::model::backups::BackupObject;

/// Pages beyond this are not read (a million objects): the bucket is not a backup bucket.
const MAX_PAGES: usize = 1000;

/// What went wrong listing a bucket; the text is what the panel shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    #[error("S3 at {url} is unreachable: {reason}; check that the store runs and the url is right")]
    Unreachable { url: String, reason: String },
    #[error(
        "S3 at {url} refused the credentials for bucket {bucket} ({status} {code}: {message}); check access_key and secret_key"
    )]
    Denied {
        url: String,
        bucket: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("S3 at {url}: bucket {bucket} does not exist ({code}); check bucket")]
    NoBucket {
        url: String,
        bucket: String,
        code: String,
    },
    #[error("S3 at {url}: listing bucket {bucket} failed: {detail}")]
    Protocol {
        url: String,
        bucket: String,
        detail: String,
    },
}

/// One S3 destination, ready to list.
#[derive(Clone)]
pub struct S3Lister {
    http: reqwest::Client,
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:9000`.
    pub base: String,
    pub bucket: String,
    pub prefix: String,
    pub region: String,
    access_key: String,
    secret_key: String,
}

impl std::fmt::Debug for S3Lister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Lister")
            .field("base", &self.base)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The text of the first `<tag>...</tag>` in `xml`, unescaped.
pub fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(unescape(&xml[start..end]))
}

/// Every `<tag>...</tag>` block's inner text, raw.
fn blocks<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(s) = rest.find(&open) {
        let after = &rest[s + open.len()..];
        let Some(e) = after.find(&close) else { break };
        out.push(&after[..e]);
        rest = &after[e + close.len()..];
    }
    out
}

/// Replaces the five XML entities and numeric references.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(end) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// One page of a ListObjectsV2 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub objects: Vec<BackupObject>,
    pub next: Option<String>,
}

/// Parses a `ListBucketResult` body.
pub fn parse_page(xml: &str) -> Result<Page, String> {
    if !xml.contains("<ListBucketResult") {
        return Err("the answer is not a ListBucketResult".into());
    }
    let mut objects = Vec::new();
    for b in blocks(xml, "Contents") {
        let key = tag(b, "Key").ok_or("an object without Key")?;
        let modified = tag(b, "LastModified").ok_or("an object without LastModified")?;
        let at: Timestamp = modified
            .parse()
            .map_err(|e| format!("LastModified {modified:?} of {key}: {e}"))?;
        let size = tag(b, "Size")
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("object {key} has no Size"))?;
        objects.push(BackupObject {
            name: key,
            at,
            size: Some(size),
        });
    }
    let truncated = tag(xml, "IsTruncated").is_some_and(|t| t.trim() == "true");
    let next = if truncated {
        Some(tag(xml, "NextContinuationToken").ok_or("IsTruncated without NextContinuationToken")?)
    } else {
        None
    };
    Ok(Page { objects, next })
}

fn reason_of(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    if e.is_timeout() {
        "no answer in time".into()
    } else {
        msg
    }
}

/// The part of a configured prefix sent to the server: up to its first `/`. B2 keeps both
/// environments in one bucket under `staging/` and `production/`; moto (our test S3 server)
/// mis-checks the signature of a query holding an encoded `/`, so the rest of the prefix is
/// matched here, client-side, in [`S3Lister::list_all`]. Real stores get a narrower listing
/// than the bucket anyway, and the result is the same.
pub fn server_prefix(prefix: &str) -> &str {
    prefix.split('/').next().unwrap_or("")
}

impl S3Lister {
    pub fn new(
        base: &str,
        bucket: &str,
        prefix: &str,
        region: &str,
        access_key: String,
        secret_key: String,
    ) -> Result<S3Lister, String> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config()?)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| format!("S3 at {base}: HTTP client: {e}"))?;
        Ok(S3Lister {
            http,
            base: base.trim_end_matches('/').to_string(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            region: region.to_string(),
            access_key,
            secret_key,
        })
    }

    fn err_protocol(&self, detail: String) -> S3Error {
        S3Error::Protocol {
            url: self.base.clone(),
            bucket: self.bucket.clone(),
            detail,
        }
    }

    /// One ListObjectsV2 page (the server-side part of the prefix only; see [`server_prefix`]).
    pub async fn page(&self, token: Option<&str>) -> Result<Page, S3Error> {
        let url = reqwest::Url::parse(&format!("{}/{}", self.base, self.bucket))
            .map_err(|e| self.err_protocol(format!("bad url: {e}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(self.err_protocol("the url has no host".into())),
        };
        let mut query = vec![("list-type".to_string(), "2".to_string())];
        let server_prefix = server_prefix(&self.prefix);
        if !server_prefix.is_empty() {
            query.push(("prefix".to_string(), server_prefix.to_string()));
        }
        if let Some(t) = token {
            query.push(("continuation-token".to_string(), t.to_string()));
        }
        let path = sigv4::uri_decode(url.path(), false);
        let headers = sigv4::sign_get(
            &host,
            &path,
            &query,
            &self.region,
            &self.access_key,
            &self.secret_key,
            Timestamp::now(),
        );
        let full = format!("{url}?{}", sigv4::canonical_query(&query));
        let mut req = self.http.get(&full);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| S3Error::Unreachable {
            url: self.base.clone(),
            reason: reason_of(&e),
        })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| S3Error::Unreachable {
            url: self.base.clone(),
            reason: reason_of(&e),
        })?;
        if status == 200 {
            return parse_page(&body).map_err(|d| self.err_protocol(d));
        }
        let code = tag(&body, "Code").unwrap_or_else(|| format!("HTTP {status}"));
        let message = tag(&body, "Message").unwrap_or_default();
        Err(match (status, code.as_str()) {
            (404, _) | (_, "NoSuchBucket") => S3Error::NoBucket {
                url: self.base.clone(),
                bucket: self.bucket.clone(),
                code,
            },
            (401 | 403, _) => S3Error::Denied {
                url: self.base.clone(),
                bucket: self.bucket.clone(),
                status,
                code,
                message,
            },
            _ => self.err_protocol(format!("HTTP {status} {code}: {message}")),
        })
    }

    /// Every object under the prefix, all pages, named by their whole key.
    pub async fn list_all(&self) -> Result<Vec<BackupObject>, S3Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.page(token.as_deref()).await?;
            out.extend(
                page.objects
                    .into_iter()
                    .filter(|o| o.name.starts_with(self.prefix.as_str())),
            );
            match page.next {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                Some(_) => {
                    return Err(self.err_protocol("the continuation token did not advance".into()));
                }
                None => return Ok(out),
            }
        }
        Err(self.err_protocol(format!("more than {MAX_PAGES} pages of objects")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_is_parsed() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated>
<Contents><Key>a&amp;b.sql.gz</Key><LastModified>2026-11-24T23:00:05.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>52428800</Size></Contents>
<Contents><Key>c</Key><LastModified>2026-11-24T15:00:05Z</LastModified><Size>1</Size></Contents>
<NextContinuationToken>tok/1=</NextContinuationToken></ListBucketResult>"#;
        let p = parse_page(xml).unwrap();
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.objects[0].name, "a&b.sql.gz");
        assert_eq!(p.objects[0].size, Some(52_428_800));
        assert_eq!(p.next.as_deref(), Some("tok/1="));
        assert!(parse_page("<Error><Code>AccessDenied</Code></Error>").is_err());
    }
}
