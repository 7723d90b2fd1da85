//! Choosing a backend: the `--datastore-endpoint` forms and [`open`].

use std::path::PathBuf;
use std::sync::Arc;

use crate::{Store, StoreError};

/// Where the store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datastore {
    /// An embedded SQLite database file.
    Sqlite(PathBuf),
    /// An etcd cluster's client endpoints (`host:port`, or URLs with `http://`/`https://`).
    Etcd(Vec<String>),
}

/// A datastore endpoint that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct InvalidEndpoint(String);

fn invalid(endpoint: &str, reason: &str) -> StoreError {
    StoreError::backend(format!("invalid datastore endpoint {endpoint:?}"), InvalidEndpoint(reason.to_owned()))
}

impl Datastore {
    /// Parses a datastore endpoint:
    ///
    /// - `None` (or an empty string): SQLite at `default_sqlite`;
    /// - `sqlite:///abs/path.db` (`sqlite://` followed by the file path);
    /// - `etcd://h1:2379,h2:2379` (comma-separated client endpoints; `http://` and `https://`
    ///   name etcd endpoints too, as in k3s).
    pub fn parse(endpoint: Option<&str>, default_sqlite: PathBuf) -> Result<Datastore, StoreError> {
        let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
            return Ok(Datastore::Sqlite(default_sqlite));
        };
        if let Some(path) = endpoint.strip_prefix("sqlite://") {
            // k3s-style `?_journal=WAL` parameters are accepted and ignored: Berth sets its own.
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(invalid(endpoint, "sqlite:// needs a file path, e.g. sqlite:///var/lib/berth/state.db"));
            }
            return Ok(Datastore::Sqlite(PathBuf::from(path)));
        }
        if let Some(hosts) = strip_etcd_scheme(endpoint) {
            // Later entries may repeat the scheme, as etcd's own --endpoints do.
            let hosts: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| strip_etcd_scheme(h).unwrap_or(h).trim_end_matches('/').to_owned())
                .collect();
            if hosts.is_empty() {
                return Err(invalid(endpoint, "etcd:// needs at least one host:port, e.g. etcd://127.0.0.1:2379"));
            }
            if let Some(bad) = hosts.iter().find(|h| h.contains('/') || !h.contains(':')) {
                return Err(invalid(endpoint, &format!("{bad:?} is not host:port")));
            }
            return Ok(Datastore::Etcd(hosts));
        }
        Err(invalid(endpoint, "expected sqlite://PATH or etcd://HOST:PORT[,HOST:PORT...]"))
    }
}

/// The host list after an etcd scheme (`etcd://`, `http://`, `https://`).
fn strip_etcd_scheme(endpoint: &str) -> Option<&str> {
    ["etcd://", "http://", "https://"].iter().find_map(|scheme| endpoint.strip_prefix(scheme))
}

/// Opens the store a [`Datastore`] names.
pub async fn open(datastore: &Datastore) -> Result<Arc<dyn Store>, StoreError> {
    match datastore {
        #[cfg(feature = "sqlite")]
        Datastore::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || crate::SqliteStore::open(&path))
                .await
                .map_err(|e| StoreError::backend("the sqlite open task failed", e))??;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "etcd")]
        Datastore::Etcd(endpoints) => Ok(Arc::new(crate::EtcdStore::connect(endpoints).await?)),
        #[allow(unreachable_patterns)]
        other => Err(StoreError::backend(
            format!("cannot open {other:?}"),
            InvalidEndpoint("this build of berth-store lacks the feature for this backend".into()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> PathBuf {
        PathBuf::from("/var/lib/berth/state.db")
    }

    #[test]
    fn no_endpoint_means_the_default_sqlite_file() {
        assert_eq!(Datastore::parse(None, default()).ok(), Some(Datastore::Sqlite(default())));
        assert_eq!(Datastore::parse(Some(" "), default()).ok(), Some(Datastore::Sqlite(default())));
    }

    #[test]
    fn sqlite_url_gives_its_absolute_path() {
        let parsed = Datastore::parse(Some("sqlite:///tmp/x/state.db"), default()).ok();
        assert_eq!(parsed, Some(Datastore::Sqlite(PathBuf::from("/tmp/x/state.db"))));
    }

    #[test]
    fn etcd_url_gives_every_endpoint() {
        let parsed = Datastore::parse(Some("etcd://h1:2379,h2:2379"), default()).ok();
        assert_eq!(parsed, Some(Datastore::Etcd(vec!["h1:2379".into(), "h2:2379".into()])));
    }

    #[test]
    fn k3s_forms_are_accepted() {
        let cases = [
            ("sqlite:///tmp/x.db?_journal=WAL", Datastore::Sqlite(PathBuf::from("/tmp/x.db"))),
            ("http://a:1,http://b:2", Datastore::Etcd(vec!["a:1".into(), "b:2".into()])),
            ("https://a:1/", Datastore::Etcd(vec!["a:1".into()])),
        ];
        for (input, want) in cases {
            assert_eq!(Datastore::parse(Some(input), default()).ok(), Some(want), "{input}");
        }
    }

    #[test]
    fn malformed_endpoints_are_rejected() {
        for bad in ["sqlite://", "etcd://", "etcd://h1", "mysql://x", "/plain/path.db", "etcd://h1:2379/x"] {
            let err = Datastore::parse(Some(bad), default());
            assert!(matches!(err, Err(StoreError::Backend { .. })), "{bad} was accepted: {err:?}");
        }
    }
}
