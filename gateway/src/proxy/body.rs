//! A client's request body on its way upstream, held to the limits: at most
//! `max_request_body_bytes`, no wait between two reads longer than `body_read_timeout`, and —
//! once `body_read_timeout` has passed since it began — an average of at least `min_body_rate`
//! bytes a second, so a client trickling a byte at a time cannot hold a connection slot, an
//! HTTP/2 stream and an upstream connection for ever. Trailers lose what the header contract
//! forbids ([`HeaderFilter::strip_trailers`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::headers::HeaderFilter;

/// What a request body is held to.
#[derive(Clone, Debug)]
pub struct BodyLimits {
    /// Most bytes.
    pub max_bytes: u64,
    /// Longest wait between two reads; also the grace before the rate applies.
    pub read_timeout: Duration,
    /// Least average bytes per second after the grace (0: none).
    pub min_rate: u64,
}

/// Why a request body was cut off.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More than the limit arrived.
    #[error("the request body exceeded {0} bytes")]
    TooLarge(u64),
    /// Nothing arrived for the read timeout, or the average rate fell below the minimum.
    #[error("the request body arrived too slowly ({received} bytes in {elapsed:?})")]
    TooSlow {
        /// Bytes received before it was cut off.
        received: u64,
        /// Since the body began.
        elapsed: Duration,
    },
    /// The client's stream failed.
    #[error("the request body could not be read: {0}")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A request body under [`BodyLimits`].
pub struct GuardedBody<B> {
    inner: B,
    limits: BodyLimits,
    filter: Arc<HeaderFilter>,
    received: u64,
    began: Instant,
    last_read: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> std::fmt::Debug for GuardedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedBody").field("received", &self.received).finish_non_exhaustive()
    }
}

impl<B> GuardedBody<B> {
    /// Guards `inner` from now.
    pub fn new(inner: B, limits: BodyLimits, filter: Arc<HeaderFilter>) -> Self {
        let now = Instant::now();
        Self { inner, limits, filter, received: 0, began: now, last_read: now, timer: None }
    }

    /// When the body is too slow unless more arrives: the read timeout after the last read, or
    /// the moment the average rate since it began would drop below the minimum.
    fn deadline(&self) -> Instant {
        let gap = self.last_read + self.limits.read_timeout;
        if self.limits.min_rate == 0 {
            return gap;
        }
        let earned = Duration::from_secs_f64(self.received as f64 / self.limits.min_rate as f64);
        gap.min(self.began + earned.max(self.limits.read_timeout))
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.last_read = Instant::now();
                this.timer = None;
                let frame = match frame.into_data() {
                    Ok(data) => {
                        this.received += data.len() as u64;
                        if this.received > this.limits.max_bytes {
                            return Poll::Ready(Some(Err(BodyError::TooLarge(this.limits.max_bytes))));
                        }
                        Frame::data(data)
                    }
                    Err(frame) => match frame.into_trailers() {
                        Ok(mut trailers) => {
                            this.filter.strip_trailers(&mut trailers);
                            Frame::trailers(trailers)
                        }
                        Err(other) => other,
                    },
                };
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Client(e.into())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline();
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::TooSlow {
                        received: this.received,
                        elapsed: this.began.elapsed(),
                    }))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body error in an error chain, if one cut the exchange off.
pub(crate) fn body_error_in<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e BodyError> {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(found) = err.downcast_ref::<BodyError>() {
            return Some(found);
        }
        cause = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    /// A body the test feeds chunk by chunk.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
        }
    }

    fn guarded(max_bytes: u64, min_rate: u64) -> (mpsc::Sender<Bytes>, GuardedBody<Fed>) {
        let (tx, rx) = mpsc::channel(16);
        let limits = BodyLimits { max_bytes, read_timeout: Duration::from_secs(30), min_rate };
        (tx, GuardedBody::new(Fed(rx), limits, Arc::default()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_is_cut_off_after_the_read_timeout() {
        let (tx, mut body) = guarded(1 << 20, 0);
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "abc");
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(err, BodyError::TooSlow { received: 3, .. }), "{err}");
        assert_eq!(started.elapsed().as_secs(), 30);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_inside_the_read_timeout_is_cut_off_by_the_minimum_rate() {
        // One byte every 20 s never trips a 30 s gap, but is far below 500 bytes a second.
        let (tx, mut body) = guarded(1 << 20, 500);
        let feeder = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                if tx.send(Bytes::from_static(b"x")).await.is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let err = loop {
            match body.frame().await.unwrap() {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, BodyError::TooSlow { .. }), "{err}");
        assert_eq!(started.elapsed().as_secs(), 30, "cut at the end of the grace period");
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_above_the_rate_is_read_whole() {
        let (tx, body) = guarded(1 << 20, 500);
        tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(10)).await;
                tx.send(Bytes::from(vec![0u8; 10_000])).await.unwrap();
            }
        });
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 100_000);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let (tx, mut body) = guarded(4, 0);
        tx.send(Bytes::from_static(b"abcde")).await.unwrap();
        assert!(matches!(body.frame().await.unwrap(), Err(BodyError::TooLarge(4))));
    }
}
