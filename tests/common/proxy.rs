//! A small HTTP/1.1 proxy for fault injection in front of dynalite or s3s-fs: answer some
//! requests with canned errors or rewrite responses, forward the rest untouched (the Host header
//! is kept, so signatures stay valid).

#![allow(dead_code)]

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What to do with one request.
pub enum Action {
    /// Forward to the upstream server unchanged.
    Forward,
    /// Answer directly.
    Respond { status: u16, body: String },
    /// Close the client connection without answering.
    Reset,
    /// Forward, then show the response body to this function.
    Inspect(Box<dyn FnOnce(&str) + Send>),
    /// Forward after waiting this long.
    Delay(std::time::Duration),
    /// Forward, then replace the response body with this function's output.
    Rewrite(Box<dyn FnOnce(String) -> String + Send>),
    /// Forward with one letter in the middle of the body changed (same length, still valid
    /// JSON) and the upstream's `x-amz-crc32` kept: a body damaged on the way.
    Corrupt,
}

/// Decides per request, from the operation and the body. The operation is the `X-Amz-Target`
/// action for DynamoDB (e.g. `Scan`), else the request line (`PUT /bucket/key?partNumber=1&...
/// HTTP/1.1`, for S3).
pub type Rule = Arc<dyn Fn(&str, &str) -> Action + Send + Sync>;

pub struct Proxy {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

/// The requests a proxy saw.
pub type Log = Arc<std::sync::Mutex<Vec<Request>>>;

/// One request a proxy saw.
pub struct Request {
    /// As the rule sees it (see [`Rule`]).
    pub op: String,
    /// The `Authorization` header.
    pub authorization: String,
    /// When it arrived.
    pub at: std::time::SystemTime,
}

impl Proxy {
    pub async fn start(upstream_port: u16, rule: Rule) -> Self {
        Self::start_logged(upstream_port, rule, Log::default()).await
    }

    /// [`Proxy::start`], recording every request in `log`.
    pub async fn start_logged(upstream_port: u16, rule: Rule, log: Log) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let (rule, log) = (Arc::clone(&rule), Arc::clone(&log));
                tokio::spawn(async move {
                    let _ = serve(conn, upstream_port, rule, log).await;
                });
            }
        });
        Proxy { port, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Message {
    head: Vec<String>,
    body: Vec<u8>,
}

async fn read_message<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Message>> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let value = |name: &str| {
        head.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    let mut body = Vec::new();
    if value("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(std::io::Error::other)?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let len = value("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        body.resize(len, 0);
        r.read_exact(&mut body).await?;
    }
    Ok(Some(Message { head, body }))
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.head.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The message with `head` and `body`; the upstream's `x-amz-crc32` is dropped unless
/// `keep_crc` (the body is the upstream's, or damaged on purpose).
fn encode_with(head: &[String], body: &[u8], keep_crc: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for h in head {
        let name = h.split(':').next().unwrap_or("");
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("x-amz-crc32") && !keep_crc)
        {
            continue;
        }
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

fn encode(head: &[String], body: &[u8]) -> Vec<u8> {
    encode_with(head, body, false)
}

/// Change one lowercase letter at or after the middle of `body` to another.
fn damage(mut body: Vec<u8>) -> Vec<u8> {
    if let Some(i) = (body.len() / 2..body.len()).find(|&i| body[i].is_ascii_lowercase()) {
        body[i] = if body[i] == b'z' { b'y' } else { body[i] + 1 };
    }
    body
}

async fn serve(conn: TcpStream, upstream_port: u16, rule: Rule, log: Log) -> std::io::Result<()> {
    let (read, mut write) = conn.into_split();
    let mut read = BufReader::new(read);
    while let Some(req) = read_message(&mut read).await? {
        let op = header(&req, "x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or(&req.head[0])
            .to_owned();
        let authorization = header(&req, "authorization").unwrap_or("").to_owned();
        log.lock().unwrap().push(Request {
            op: op.clone(),
            authorization,
            at: std::time::SystemTime::now(),
        });
        let body = String::from_utf8_lossy(&req.body).into_owned();
        let response = match rule(&op, &body) {
            Action::Reset => return Ok(()),
            Action::Respond { status, body } => encode(
                &[
                    format!("HTTP/1.1 {status} Error"),
                    "content-type: application/x-amz-json-1.0".into(),
                    "x-amzn-requestid: proxy".into(),
                ],
                body.as_bytes(),
            ),
            action => {
                if let Action::Delay(d) = &action {
                    tokio::time::sleep(*d).await;
                }
                let upstream = TcpStream::connect(("127.0.0.1", upstream_port)).await?;
                let (up_read, mut up_write) = upstream.into_split();
                up_write.write_all(&encode(&req.head, &req.body)).await?;
                let resp = read_message(&mut BufReader::new(up_read))
                    .await?
                    .ok_or_else(|| std::io::Error::other("upstream closed"))?;
                match action {
                    Action::Rewrite(f) => encode(
                        &resp.head,
                        f(String::from_utf8_lossy(&resp.body).into_owned()).as_bytes(),
                    ),
                    Action::Corrupt => encode_with(&resp.head, &damage(resp.body), true),
                    Action::Inspect(f) => {
                        f(&String::from_utf8_lossy(&resp.body));
                        encode(&resp.head, &resp.body)
                    }
                    _ => encode(&resp.head, &resp.body),
                }
            }
        };
        write.write_all(&response).await?;
    }
    Ok(())
}
