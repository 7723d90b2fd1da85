//! Reading manifests for apply/create/delete `-f`: files, directories (`.yaml`, `.yml`, `.json`)
//! and stdin; multi-document YAML (serde-saphyr, legacy octal numbers as Kubernetes reads them) and
//! JSON; empty documents skipped; `kind: List` expanded. Errors name the file and the line.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One object from a manifest, with the file it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The file name as given (or `STDIN`).
    pub source: String,
    pub object: Value,
}

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the path {path:?} does not exist")]
    Missing { path: String },
    #[error("failed to read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("error parsing {path}: line {line} column {column}: {message}")]
    Parse { path: String, line: u64, column: u64, message: String },
    #[error("error parsing {path}: {message}")]
    ParseNoLocation { path: String, message: String },
    #[error("unable to decode {path:?}: Object 'Kind' is missing in '{object}'")]
    MissingKind { path: String, object: String },
    #[error("unable to decode {path:?}: apiVersion is missing in '{object}'")]
    MissingApiVersion { path: String, object: String },
    #[error("no objects passed to apply")]
    Empty,
}

/// Reads every `-f` argument in order.
pub fn read_all(args: &[String]) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| ManifestError::Read { path: "STDIN".into(), source })?;
            out.extend(parse("STDIN", &text)?);
            continue;
        }
        let path = Path::new(arg);
        if !path.exists() {
            return Err(ManifestError::Missing { path: arg.clone() });
        }
        for file in files_of(path)? {
            let name = file.display().to_string();
            let text =
                std::fs::read_to_string(&file).map_err(|source| ManifestError::Read { path: name.clone(), source })?;
            out.extend(parse(&name, &text)?);
        }
    }
    if out.is_empty() {
        return Err(ManifestError::Empty);
    }
    Ok(out)
}

/// A file itself, or a directory's manifest files sorted by name (not recursive, as kubectl).
fn files_of(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let read_err = |source| ManifestError::Read { path: path.display().to_string(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let p = entry.map_err(read_err)?.path();
        let manifest_ext = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"));
        if p.is_file() && manifest_ext {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses one file's text into objects.
pub fn parse(source: &str, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let options = serde_saphyr::options! { legacy_octal_numbers: true };
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options).map_err(|err| {
        let message = plain_message(&err);
        match err.location() {
            Some(loc) => {
                ManifestError::Parse { path: source.to_string(), line: loc.line(), column: loc.column(), message }
            }
            None => ManifestError::ParseNoLocation { path: source.to_string(), message },
        }
    })?;
    let mut out = Vec::new();
    for doc in docs {
        expand(source, doc, &mut out)?;
    }
    Ok(out)
}

/// serde-saphyr's message without the snippet and without its own location suffix.
fn plain_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or_default().trim().to_string();
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first,
    }
}

fn expand(source: &str, doc: Value, out: &mut Vec<Manifest>) -> Result<(), ManifestError> {
    let Value::Object(map) = &doc else {
        if doc.is_null() {
            return Ok(());
        }
        return Err(ManifestError::MissingKind { path: source.to_string(), object: doc.to_string() });
    };
    if map.is_empty() {
        return Ok(());
    }
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind.is_empty() {
        return Err(ManifestError::MissingKind { path: source.to_string(), object: doc.to_string() });
    }
    if kind == "List" || (kind.ends_with("List") && map.get("items").is_some_and(Value::is_array)) {
        if let Some(Value::Array(items)) = map.get("items") {
            for item in items.clone() {
                expand(source, item, out)?;
            }
        }
        return Ok(());
    }
    if map.get("apiVersion").and_then(Value::as_str).unwrap_or_default().is_empty() {
        return Err(ManifestError::MissingApiVersion { path: source.to_string(), object: doc.to_string() });
    }
    out.push(Manifest { source: source.to_string(), object: doc });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_document_yaml_skips_empty_documents() {
        let text = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n";
        let got = parse("f.yaml", text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].object["metadata"]["name"], "a");
        assert_eq!(got[1].object["kind"], "Namespace");
        assert_eq!(got[1].source, "f.yaml");
    }

    #[test]
    fn legacy_octal_modes_read_as_kubernetes_does() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n  - name: v\n    configMap: {name: c, defaultMode: 0644}\n";
        let got = parse("p.yaml", text).unwrap();
        assert_eq!(got[0].object["spec"]["volumes"][0]["configMap"]["defaultMode"], json!(420));
    }

    #[test]
    fn lists_are_expanded() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}]}"#;
        let got = parse("l.json", text).unwrap();
        let names: Vec<&str> = got.iter().map(|m| m.object["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn malformed_yaml_reports_file_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n  bad: [unclosed\n";
        let err = parse("bad.yaml", text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("error parsing bad.yaml: line 7 column"), "{msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }

    #[test]
    fn missing_kind_is_an_error() {
        let err = parse("x.yaml", "apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert!(err.to_string().contains("Object 'Kind' is missing"), "{err}");
    }
}
