//! Reading request bodies: the 3 MiB limit and the protobuf adapter (the edges' `protobuf`
//! module turns `k8s\0` + runtime.Unknown into JSON).

use axum::body::Body;
use bytes::Bytes;
use serde_json::Value;

use crate::error::{ApiError, MAX_BODY_BYTES};

/// Reads a whole request body; over 3 MiB is 413.
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        if crate::error::error_chain(&e).contains("length limit") {
            ApiError::too_large()
        } else {
            ApiError::bad_request(format!("failed to read the request body: {e}"))
        }
    })
}

/// Decodes a Kubernetes protobuf body into JSON (415 for kinds without a converter, 400 for
/// malformed bodies).
pub fn decode_protobuf(body: &[u8]) -> Result<Value, ApiError> {
    crate::protobuf::decode_protobuf(body).map_err(|e| {
        let msg = crate::error::error_chain(&e);
        if e.status_code() == http::StatusCode::UNSUPPORTED_MEDIA_TYPE {
            ApiError::new(415, "UnsupportedMediaType", msg)
        } else {
            ApiError::bad_request(msg)
        }
    })
}
