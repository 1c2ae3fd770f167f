//! HTTP/3: a quinn client endpoint and an h3 connection to the gateway, for one test at a time.

use std::net::SocketAddr;

use bytes::{Buf, Bytes};
use http::{Request, StatusCode};

/// An HTTP/3 connection from a quinn client endpoint.
pub struct H3 {
    endpoint: quinn::Endpoint,
    /// The QUIC connection (to open raw streams, or wait for it to close).
    pub connection: quinn::Connection,
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    driver: tokio::task::JoinHandle<()>,
}

/// A response with its body read.
pub struct H3Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl H3Resp {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The problem+json `reason`.
    pub fn reason(&self) -> String {
        self.json()["reason"].as_str().unwrap_or_default().to_owned()
    }

    /// A header the demo service received, from its `received_headers`.
    pub fn received(&self, name: &str) -> Option<String> {
        self.json()["received_headers"][name].as_str().map(str::to_owned)
    }
}

impl H3 {
    /// Connects to `addr` as `localhost` with `config` and starts HTTP/3.
    pub async fn connect(addr: SocketAddr, config: quinn::ClientConfig) -> Result<Self, String> {
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut endpoint = quinn::Endpoint::client(local).map_err(|e| format!("client endpoint: {e}"))?;
        endpoint.set_default_client_config(config);
        let connection = endpoint
            .connect(addr, "localhost")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (mut driver, send) =
            h3::client::new(h3_quinn::Connection::new(connection.clone())).await.map_err(|e| format!("h3: {e}"))?;
        let driver = tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(Self { endpoint, connection, send, driver })
    }

    /// Sends `request` (with `body`) and reads the whole response.
    pub async fn request(&mut self, request: Request<()>, body: Option<Bytes>) -> Result<H3Resp, String> {
        let mut stream = self.send.send_request(request).await.map_err(|e| format!("send: {e}"))?;
        if let Some(body) = body {
            stream.send_data(body).await.map_err(|e| format!("body: {e}"))?;
        }
        stream.finish().await.map_err(|e| format!("finish: {e}"))?;
        let response = stream.recv_response().await.map_err(|e| format!("response: {e}"))?;
        let mut body = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.map_err(|e| format!("data: {e}"))? {
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        Ok(H3Resp { status: response.status(), headers: response.headers().clone(), body: body.into() })
    }

    /// Another handle on the connection's request sender, to send from another task.
    pub fn sender(&self) -> h3::client::SendRequest<h3_quinn::OpenStreams, Bytes> {
        self.send.clone()
    }

    /// `GET https://localhost{path}`.
    pub async fn get(&mut self, path: &str) -> Result<H3Resp, String> {
        self.request(Request::get(format!("https://localhost{path}")).body(()).unwrap(), None).await
    }
}

impl Drop for H3 {
    fn drop(&mut self) {
        self.driver.abort();
        self.connection.close(0u32.into(), b"");
        self.endpoint.close(0u32.into(), b"");
    }
}
