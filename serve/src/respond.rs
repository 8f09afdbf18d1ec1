//! Small request/response helpers shared by the servers.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Body;
use serde::Serialize;

use std::time::Duration;

/// Boxed error type for request and response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error of a [`crate::RequestBody`] whose client was too slow.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyReadTimeout(pub Duration);

/// Why a request body could not be read. Maps to a status with [`BodyError::status`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than the limit (`413 Payload Too Large`).
    #[error("request body exceeds {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The client did not send the body within the server's body read timeout
    /// (`408 Request Timeout`; see [`crate::ServeOptions::body_read_timeout`]).
    #[error("{0}")]
    TimedOut(#[source] BoxError),
    /// Reading the body failed, e.g. the client went away (`400 Bad Request`).
    #[error("reading request body: {0}")]
    Read(#[source] BoxError),
}

impl BodyError {
    /// `413` for [`BodyError::TooLarge`], `408` for [`BodyError::TimedOut`], `400` for
    /// [`BodyError::Read`].
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Read(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// A plain-text response with [`BodyError::status`] and the error message.
    #[must_use]
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        text(self.status(), &format!("{self}\n"))
    }
}

/// Reads a whole request body, failing once more than `max_bytes` have arrived (or
/// up front when the declared `Content-Length` is already larger).
///
/// # Errors
///
/// [`BodyError::TooLarge`] over the limit, [`BodyError::Read`] when the body stream fails.
pub async fn read_body_limited<B>(body: B, max_bytes: usize) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > max_bytes as u64 {
        return Err(BodyError::TooLarge { limit: max_bytes });
    }
    match Limited::new(body, max_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge { limit: max_bytes }),
        Err(e) if e.is::<BodyReadTimeout>() => Err(BodyError::TimedOut(e)),
        Err(e) => Err(BodyError::Read(e)),
    }
}

/// A response with `body` as `text/plain; charset=utf-8`.
#[must_use]
pub fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    with_type(
        status,
        Bytes::copy_from_slice(body.as_bytes()),
        "text/plain; charset=utf-8",
    )
}

/// A response with `value` serialized as `application/json`. If serialization fails (a
/// bug in the value's `Serialize`), a `500` plain-text response instead, and the error is
/// logged.
#[must_use]
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, Bytes::from(body), "application/json"),
        Err(e) => {
            tracing::error!(error = %e, "serializing JSON response failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: serializing response\n",
            )
        }
    }
}

pub(crate) fn with_type(
    status: StatusCode,
    body: Bytes,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    fn chunks(
        parts: Vec<Result<&'static [u8], &'static str>>,
    ) -> impl Body<Data = Bytes, Error = BoxError> {
        StreamBody::new(futures::stream::iter(parts.into_iter().map(|p| {
            p.map(|b| Frame::data(Bytes::from_static(b)))
                .map_err(BoxError::from)
        })))
    }

    #[tokio::test]
    async fn reads_a_body_within_the_limit() {
        let body = chunks(vec![Ok(b"hello "), Ok(b"world")]);
        assert_eq!(read_body_limited(body, 11).await.unwrap(), "hello world");
    }

    #[tokio::test]
    async fn streaming_body_over_the_limit_is_413() {
        let body = chunks(vec![Ok(b"hello "), Ok(b"world")]);
        let err = read_body_limited(body, 10).await.unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 10 }), "{err:?}");
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.to_response().status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn declared_length_over_the_limit_is_413_without_reading() {
        let body = Full::new(Bytes::from_static(b"0123456789"));
        let err = read_body_limited(body, 4).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn read_error_is_400() {
        let body = chunks(vec![Ok(b"par"), Err("connection reset")]);
        let err = read_body_limited(body, 100).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("connection reset"), "{err}");
    }

    #[tokio::test]
    async fn json_and_text_set_status_and_content_type() {
        let resp = json(StatusCode::CREATED, &serde_json::json!({"a": 1}));
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, r#"{"a":1}"#);

        let resp = text(StatusCode::NOT_FOUND, "nope");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
    }

    #[test]
    fn json_serialization_failure_is_500() {
        struct Bad;
        impl Serialize for Bad {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("nope"))
            }
        }
        assert_eq!(
            json(StatusCode::OK, &Bad).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
