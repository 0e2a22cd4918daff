//! A DynamoDB Streams server of the tests' own, for what moto cannot do: shards that split
//! (a closed parent, two children), records trimmed after 24 hours, iterators that expire,
//! `LimitExceededException`. It speaks the Streams API's JSON protocol (`X-Amz-Target:
//! DynamoDBStreams_20120810.<Operation>`), answers DescribeStream, GetShardIterator and
//! GetRecords as the API reference describes them, and injects only the faults the reference
//! lists for those operations. The table itself stays on moto: the test writes each change to
//! moto and appends its stream record here (`AWS_ENDPOINT_URL_DYNAMODB_STREAMS` points the
//! Streams client here).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue as AV;
use ddbsnap::convert::Item;
use serde_json::{Value, json};

/// One shard: its records (sequence number, record), whether it is closed, and from which
/// sequence number on its records are still kept.
#[derive(Debug, Clone)]
struct Shard {
    id: String,
    parent: Option<String>,
    first: u128,
    records: Vec<(u128, Value)>,
    closed: Option<u128>,
    kept_from: u128,
    /// Trims so far: an iterator taken before the last one points at trimmed records, unless
    /// it was past the `trimmed` records the trim removed.
    epoch: u32,
    trimmed: usize,
}

/// The stream's state, and the faults still to inject.
#[derive(Debug, Default)]
struct State {
    arn: String,
    shards: Vec<Shard>,
    next_sequence: u128,
    /// The next GetRecords calls fail with LimitExceededException.
    limit_exceeded: u32,
    /// The next GetRecords calls fail with ExpiredIteratorException.
    expire: u32,
    /// Shards DescribeStream lists per page.
    page: usize,
    /// Calls per operation.
    calls: HashMap<String, u64>,
    /// The stream trims its records after this many more GetRecords calls.
    trim_after: Option<u32>,
}

impl State {
    /// Trim every record written so far (as 24 hours later); closed shards with nothing left
    /// are dropped.
    fn trim(&mut self) {
        let now = self.next_sequence;
        for shard in &mut self.shards {
            shard.kept_from = now;
            shard.epoch += 1;
            shard.trimmed = shard.records.len();
            shard.records.clear();
        }
        self.shards.retain(|sh| sh.closed.is_none());
    }
}

/// The server; stops with the test process.
pub struct FaultStream {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

fn dynamo_json(item: &Item) -> Value {
    let text = ddbsnap::convert::json::value_to_json(&AV::M(item.clone())).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    value["M"].clone()
}

impl FaultStream {
    /// A stream `arn` with one open shard.
    pub fn start(arn: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            arn: arn.to_owned(),
            next_sequence: 100_000_000_000_000_000_000,
            page: 100,
            ..State::default()
        }));
        let stream = FaultStream {
            port,
            state: Arc::clone(&state),
        };
        stream.open_shard(None);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = Arc::clone(&state);
                std::thread::spawn(move || serve(conn, &state));
            }
        });
        stream
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn open_shard(&self, parent: Option<String>) {
        let mut s = self.state.lock().unwrap();
        let first = s.next_sequence;
        let id = format!(
            "shardId-{:020}-{:08x}",
            s.shards.len() + 1,
            fastrand::u32(..)
        );
        s.shards.push(Shard {
            id,
            parent,
            first,
            records: Vec::new(),
            closed: None,
            kept_from: 0,
            epoch: 0,
            trimmed: 0,
        });
    }

    /// Append the record of a change of the item with key `keys`: `new` its new image (none
    /// for a delete), `old` its old one; `by_ttl` makes it a delete by Time to Live. It goes to
    /// the open shard the key hashes to, whose id it returns with the record's sequence number.
    pub fn record(
        &self,
        keys: &Item,
        new: Option<&Item>,
        old: Option<&Item>,
        by_ttl: bool,
    ) -> (String, u128) {
        let mut s = self.state.lock().unwrap();
        let event = match (new, old) {
            (Some(_), None) => "INSERT",
            (Some(_), Some(_)) => "MODIFY",
            (None, _) => "REMOVE",
        };
        let sequence = s.next_sequence;
        s.next_sequence += 7;
        let open: Vec<usize> = (0..s.shards.len())
            .filter(|&i| s.shards[i].closed.is_none())
            .collect();
        let hash = format!("{:?}", dynamo_json(keys))
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        let shard = open[hash % open.len()];
        let mut change = json!({
            "ApproximateCreationDateTime": chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
            "Keys": dynamo_json(keys),
            "SequenceNumber": sequence.to_string(),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(new) = new {
            change["NewImage"] = dynamo_json(new);
        }
        if let Some(old) = old {
            change["OldImage"] = dynamo_json(old);
        }
        let mut record = json!({
            "eventID": format!("{sequence:x}"),
            "eventName": event,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": change,
        });
        if by_ttl {
            record["userIdentity"] =
                json!({"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"});
        }
        s.shards[shard].records.push((sequence, record));
        (s.shards[shard].id.clone(), sequence)
    }

    /// Split every open shard: it closes after its last record, and two children open.
    pub fn split(&self) {
        let parents: Vec<String> = {
            let mut s = self.state.lock().unwrap();
            let end = s.next_sequence;
            s.next_sequence += 1;
            s.shards
                .iter_mut()
                .filter(|sh| sh.closed.is_none())
                .map(|sh| {
                    sh.closed = Some(sh.records.last().map_or(end, |r| r.0));
                    sh.id.clone()
                })
                .collect()
        };
        for parent in parents {
            self.open_shard(Some(parent.clone()));
            self.open_shard(Some(parent));
        }
    }

    /// The stream trims every record written so far (as 24 hours later); closed shards with
    /// nothing left are dropped.
    pub fn trim(&self) {
        self.state.lock().unwrap().trim();
    }

    /// The stream trims its records (as [`FaultStream::trim`]) once `calls` more GetRecords
    /// calls are answered: a reader in the middle of a shard finds its iterator trimmed
    /// (TrimmedDataAccessException).
    pub fn trim_after(&self, calls: u32) {
        self.state.lock().unwrap().trim_after = Some(calls);
    }

    /// The next `n` GetRecords calls fail with LimitExceededException, and the `m` after them
    /// with ExpiredIteratorException; DescribeStream lists `page` shards per page.
    pub fn faults(&self, n: u32, m: u32, page: usize) {
        let mut s = self.state.lock().unwrap();
        s.limit_exceeded = n;
        s.expire = m;
        s.page = page;
    }

    /// Calls of `operation` so far.
    pub fn calls(&self, operation: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// The sequence number of every record the stream still keeps.
    pub fn sequence_numbers(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        let mut all: Vec<String> = (s.shards.iter())
            .flat_map(|sh| sh.records.iter().map(|r| r.0.to_string()))
            .collect();
        all.sort();
        all
    }

    /// How many shards the stream lists.
    pub fn shard_count(&self) -> usize {
        self.state.lock().unwrap().shards.len()
    }
}

fn error(kind: &str, message: &str) -> (u16, Value) {
    (
        400,
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message}),
    )
}

/// One connection: requests until it closes.
fn serve(conn: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut target = String::new();
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "x-amz-target" => target = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let (status, answer) = handle(&mut state.lock().unwrap(), &operation, &request);
        let text = answer.to_string();
        let reason = if status == 200 { "OK" } else { "Bad Request" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.0\r\n\
             x-amzn-RequestId: {:08x}\r\nContent-Length: {}\r\n\r\n",
            fastrand::u32(..),
            text.len()
        );
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

fn handle(s: &mut State, operation: &str, request: &Value) -> (u16, Value) {
    *s.calls.entry(operation.to_owned()).or_default() += 1;
    match operation {
        "DescribeStream" => describe(s, request),
        "GetShardIterator" => iterator(s, request),
        "GetRecords" => records(s, request),
        _ => error("UnknownOperationException", operation),
    }
}

fn describe(s: &State, request: &Value) -> (u16, Value) {
    let after = request["ExclusiveStartShardId"].as_str();
    let start = after
        .and_then(|a| s.shards.iter().position(|sh| sh.id == a))
        .map_or(0, |i| i + 1);
    let page: Vec<&Shard> = s.shards.iter().skip(start).take(s.page).collect();
    let shards: Vec<Value> = page
        .iter()
        .map(|sh| {
            let mut range = json!({"StartingSequenceNumber": sh.first.to_string()});
            if let Some(end) = sh.closed {
                range["EndingSequenceNumber"] = json!(end.to_string());
            }
            let mut shard = json!({"ShardId": sh.id, "SequenceNumberRange": range});
            if let Some(parent) = &sh.parent {
                shard["ParentShardId"] = json!(parent);
            }
            shard
        })
        .collect();
    let mut description = json!({
        "StreamArn": s.arn,
        "StreamStatus": "ENABLED",
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        "Shards": shards,
    });
    if start + page.len() < s.shards.len() {
        description["LastEvaluatedShardId"] = json!(page.last().unwrap().id);
    }
    (200, json!({"StreamDescription": description}))
}

fn iterator(s: &State, request: &Value) -> (u16, Value) {
    let id = request["ShardId"].as_str().unwrap_or_default();
    let Some(shard) = s.shards.iter().find(|sh| sh.id == id) else {
        return error("ResourceNotFoundException", "no such shard");
    };
    let index = match request["ShardIteratorType"].as_str() {
        Some("TRIM_HORIZON") => 0,
        Some("LATEST") => shard.records.len(),
        Some("AFTER_SEQUENCE_NUMBER") => {
            let after: u128 = request["SequenceNumber"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if after < shard.kept_from {
                return error(
                    "TrimmedDataAccessException",
                    "the sequence number is beyond the trim horizon",
                );
            }
            shard.records.iter().take_while(|r| r.0 <= after).count()
        }
        _ => return error("ValidationException", "iterator type"),
    };
    (
        200,
        json!({"ShardIterator": format!("{id}|{index}|{}", shard.epoch)}),
    )
}

fn records(s: &mut State, request: &Value) -> (u16, Value) {
    if s.limit_exceeded > 0 {
        s.limit_exceeded -= 1;
        return error("LimitExceededException", "too many requests on the shard");
    }
    if s.expire > 0 {
        s.expire -= 1;
        return error("ExpiredIteratorException", "the iterator has expired");
    }
    match s.trim_after {
        Some(0) => {
            s.trim_after = None;
            s.trim();
        }
        Some(n) => s.trim_after = Some(n - 1),
        None => {}
    }
    let iterator = request["ShardIterator"].as_str().unwrap_or_default();
    let mut parts = iterator.split('|');
    let id = parts.next().unwrap_or_default();
    let mut index: usize = parts.next().and_then(|i| i.parse().ok()).unwrap_or(0);
    let epoch: u32 = parts.next().and_then(|e| e.parse().ok()).unwrap_or(0);
    let Some(shard) = s.shards.iter().find(|sh| sh.id == id) else {
        return error("TrimmedDataAccessException", "the shard was trimmed");
    };
    if epoch != shard.epoch {
        if index < shard.trimmed {
            return error(
                "TrimmedDataAccessException",
                "the iterator points at records beyond the trim horizon",
            );
        }
        index -= shard.trimmed;
    }
    let limit = request["Limit"].as_u64().unwrap_or(1000) as usize;
    let page: Vec<Value> = shard
        .records
        .iter()
        .skip(index)
        .take(limit)
        .map(|r| r.1.clone())
        .collect();
    let next = index + page.len();
    let mut answer = json!({"Records": page});
    if shard.closed.is_none() || next < shard.records.len() {
        answer["NextShardIterator"] = json!(format!("{id}|{next}|{}", shard.epoch));
    }
    (200, answer)
}
