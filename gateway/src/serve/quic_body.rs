//! An HTTP/3 request body as an [`http_body::Body`], so the pipeline and the upstream client take
//! it like a TCP one.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};

type RecvStream = h3::server::RequestStream<h3_quinn::RecvStream, Bytes>;

/// The receiving half of an HTTP/3 request stream: DATA frames, then trailers if any.
pub struct RequestBody {
    stream: RecvStream,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Trailers,
    Done,
}

impl RequestBody {
    pub(crate) fn new(stream: RecvStream) -> Self {
        Self { stream, state: State::Data }
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody").finish_non_exhaustive()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = h3::error::StreamError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            match self.state {
                State::Data => match ready!(self.stream.poll_recv_data(cx)) {
                    Ok(Some(mut data)) => {
                        let bytes = data.copy_to_bytes(data.remaining());
                        if !bytes.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(bytes))));
                        }
                    }
                    Ok(None) => self.state = State::Trailers,
                    Err(e) => {
                        self.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                State::Trailers => {
                    let trailers = ready!(self.stream.poll_recv_trailers(cx));
                    self.state = State::Done;
                    return match trailers {
                        Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                        Ok(None) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(e))),
                    };
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }
}
