//! get and list: label/field selectors, limit/continue paging at a fixed revision, and the
//! resourceVersion semantics of list.

use axum::response::Response;
use base64::Engine;
use berth_api::selector::{FieldSelector, LabelSelector};
use berth_store::{RangeRequest, Revision, StoreError};
use http::{StatusCode, header};
use serde_json::{Value, json};

use super::{Ctx, json_response};
use crate::error::ApiError;
use crate::negotiate::representation;
use crate::object;
use crate::output::{IncludeObject, render_list, render_object};
use crate::request::{field_selector, label_selector};

/// `GET .../{plural}/{name}`.
pub async fn get(ctx: &Ctx<'_>, name: &str) -> Result<Response, ApiError> {
    let rep = representation(ctx.header(header::ACCEPT), false)?;
    let (obj, _) = ctx.current(name).await?.ok_or_else(|| ApiError::not_found(ctx.rt(), name))?;
    let served = ctx.to_served(obj)?;
    let include = IncludeObject::parse(ctx.query.get("includeObject"));
    let body = render_object(&rep, ctx.rt(), served, include);
    Ok(json_response(StatusCode::OK, &body, &rep.content_type(false)))
}

/// Selectors of a list, watch or deletecollection.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    pub label: LabelSelector,
    pub field: FieldSelector,
}

impl Selectors {
    pub fn from_ctx(ctx: &Ctx<'_>) -> Result<Self, ApiError> {
        Ok(Selectors {
            label: label_selector(ctx.query.get("labelSelector"))?,
            field: field_selector(ctx.rt(), ctx.query.get("fieldSelector"))?,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.label.matches(&object::labels_of(obj)) && self.field.matches(obj)
    }
}

/// The decoded `continue` token (upstream's shape: `{"v","rv","start"}`, base64).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContinueToken {
    pub v: String,
    pub rv: Revision,
    pub start: String,
}

impl ContinueToken {
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(s: &str) -> Result<Self, ApiError> {
        let bad = |why: String| ApiError::bad_request(format!("continue key is not valid: {why}"));
        let engines = [
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::STANDARD,
        ];
        let bytes =
            engines.iter().find_map(|e| e.decode(s.trim()).ok()).ok_or_else(|| bad("not base64".to_string()))?;
        let tok: ContinueToken = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if tok.v != "meta.k8s.io/v1" {
            return Err(bad(format!("incorrect encoded start resourceVersion (version {})", tok.v)));
        }
        if tok.rv <= 0 || tok.start.contains("..") {
            return Err(bad("invalid start position".to_string()));
        }
        Ok(tok)
    }
}

/// A list read: the matching objects (storage version), the revision read at, the next token.
pub struct ListResult {
    pub items: Vec<Value>,
    pub revision: Revision,
    pub continue_token: Option<String>,
}

/// Reads the objects of the request's kind and namespace matching `sel`, honouring
/// `limit`, `continue`, `resourceVersion` and `resourceVersionMatch`.
pub async fn list_stored(ctx: &Ctx<'_>, sel: &Selectors) -> Result<ListResult, ApiError> {
    let q = ctx.query;
    let prefix = ctx.rt().key_prefix(ctx.ns());
    let limit = q.int("limit")?.filter(|l| *l > 0).map(|l| l as u64);
    let rv = q.get("resourceVersion").filter(|s| !s.is_empty());
    let rv_num = match rv {
        None => None,
        Some(s) => Some(s.parse::<Revision>().map_err(|_| {
            ApiError::bad_request(format!("resourceVersion: Invalid value: {s:?}: must be a valid resource version"))
        })?),
    };
    let token = match q.get("continue").filter(|s| !s.is_empty()) {
        Some(c) => {
            if rv_num.is_some_and(|r| r != 0) {
                return Err(ApiError::bad_request("specifying resource version is not allowed when using continue"));
            }
            Some(ContinueToken::decode(c)?)
        }
        None => None,
    };
    let mut revision = match (&token, q.get("resourceVersionMatch").filter(|s| !s.is_empty())) {
        (Some(t), _) => Some(t.rv),
        (None, Some("Exact")) => match rv_num {
            Some(r) if r > 0 => Some(r),
            _ => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"\" or \"0\"",
                ));
            }
        },
        (None, Some("NotOlderThan")) | (None, None) => None,
        (None, Some(other)) => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
    };
    let mut start_after = token.as_ref().map(|t| format!("{prefix}{}", t.start));
    let mut items = Vec::new();
    loop {
        let page = limit.map(|l| l.saturating_sub(items.len() as u64).max(1));
        let resp = ctx
            .state
            .store
            .range(RangeRequest { prefix: prefix.clone(), start_after: start_after.clone(), limit: page, revision })
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } if token.is_some() => ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue value from the response.",
                ),
                other => ApiError::from_store(ctx.rt(), "", other),
            })?;
        revision = Some(resp.revision);
        let last_key = resp.kvs.last().map(|kv| kv.key.clone());
        for kv in &resp.kvs {
            if let Some(obj) = object::from_kv(kv)
                && sel.matches(&obj)
            {
                items.push(obj);
            }
        }
        match (limit, resp.more, last_key) {
            (Some(l), true, Some(last)) => {
                if items.len() as u64 >= l {
                    let start = last.strip_prefix(&prefix).unwrap_or(&last).to_string();
                    let tok = ContinueToken { v: "meta.k8s.io/v1".into(), rv: resp.revision, start };
                    return Ok(ListResult { items, revision: resp.revision, continue_token: Some(tok.encode()) });
                }
                start_after = Some(last);
            }
            _ => return Ok(ListResult { items, revision: resp.revision, continue_token: None }),
        }
    }
}

/// `GET .../{plural}`.
pub async fn list(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let rep = representation(ctx.header(header::ACCEPT), true)?;
    let sel = Selectors::from_ctx(ctx)?;
    let res = list_stored(ctx, &sel).await?;
    let items = res.items.into_iter().map(|o| ctx.to_served(o)).collect::<Result<Vec<_>, _>>()?;
    let mut meta = json!({"resourceVersion": res.revision.to_string()});
    if let Some(c) = res.continue_token {
        meta["continue"] = json!(c);
    }
    let include = IncludeObject::parse(ctx.query.get("includeObject"));
    let body = render_list(&rep, ctx.rt(), &ctx.rp.api_version(), items, meta, include);
    Ok(json_response(StatusCode::OK, &body, &rep.content_type(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_garbage_is_rejected() {
        let t = ContinueToken { v: "meta.k8s.io/v1".into(), rv: 42, start: "default/web".into() };
        assert_eq!(ContinueToken::decode(&t.encode()).unwrap(), t);
        assert_eq!(ContinueToken::decode("!!!").unwrap_err().code, 400);
    }
}
