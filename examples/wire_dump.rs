//! Decodes a recorded ZooKeeper conversation frame by frame and prints it
//! in words: a protocol analyzer built on `zk-proto`.
//!
//! ```text
//! cargo run --example wire_dump                       # the bundled Apache 3.8 recording
//! cargo run --example wire_dump -- path/to/session.txt
//! ```
//!
//! The input format is that of `zk-proto/tests/golden/` (`C <hex>` for a
//! client frame, `S <hex>` for a server frame, `#` comments), which
//! `zk-proto/tests/golden/tools/record_proxy.py` records from live traffic.

use std::collections::HashMap;

use bytes::Bytes;
use zk_proto::records::*;
use zk_proto::{EventType, OpCode, Record, Request, Response};

fn unhex(s: &str) -> Result<Bytes, String> {
    if s.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect::<Result<Vec<u8>, _>>()
        .map(Bytes::from)
}

fn describe_request(req: &Request) -> String {
    match req {
        Request::Create(c) | Request::Create2(c) | Request::CreateContainer(c) => format!(
            "{} mode={} data={}",
            c.path,
            zk_proto::CreateMode::from(c.flags),
            c.data.as_ref().map_or("null".to_string(), |d| format!("{} bytes", d.len()))
        ),
        Request::Multi(m) | Request::MultiRead(m) => {
            let ops: Vec<String> = m.ops.iter().map(|o| format!("{} {}", o.opcode(), o.path())).collect();
            format!("[{}]", ops.join(", "))
        }
        Request::Auth(a) => format!("scheme={}", a.scheme),
        other => other.path().unwrap_or("").to_string(),
    }
}

fn describe_response(rsp: &Response) -> String {
    match rsp {
        Response::Create(c) => format!("path={}", c.path),
        Response::Create2(c) => format!("path={} czxid={:#x}", c.path, c.stat.czxid),
        Response::GetData(d) => format!(
            "data={:?} version={}",
            d.data.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
            d.stat.version
        ),
        Response::SetData(s) => format!("version={}", s.stat.version),
        Response::Exists(s) => format!("version={}", s.stat.version),
        Response::GetChildren(c) => format!("children={:?}", c.children),
        Response::GetChildren2(c) => format!("children={:?} cversion={}", c.children, c.stat.cversion),
        Response::Multi(m) => match m.first_error() {
            Some((i, e)) => format!("{} results, op {i} failed with {e}", m.results.len()),
            None => format!("{} results, all ok", m.results.len()),
        },
        Response::WhoAmI(w) => format!("{:?}", w.client_info),
        Response::Empty => String::new(),
        other => format!("{other:?}"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/zk-proto/tests/golden/client_session.txt").to_string()
    });
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut opcodes: HashMap<i32, OpCode> = HashMap::new();
    let mut handshake_done = (false, false);
    println!("Decoding {path}");
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (dir, hex) = line.split_once(' ').ok_or(format!("line {}: no direction", n + 1))?;
        let mut frame = unhex(hex.trim()).map_err(|e| format!("line {}: {e}", n + 1))?;
        let size = frame.len();
        match dir {
            "C" if !handshake_done.0 => {
                handshake_done.0 = true;
                let r = ConnectRequest::decode_exact(frame)?;
                println!(
                    "client -> connect: timeout {} ms, session {:#x}, read-only {:?} ({size} bytes)",
                    r.time_out, r.session_id, r.read_only
                );
            }
            "S" if !handshake_done.1 => {
                handshake_done.1 = true;
                let r = ConnectResponse::decode_exact(frame)?;
                println!(
                    "server <- session {:#x} with timeout {} ms ({size} bytes)",
                    r.session_id, r.time_out
                );
            }
            "C" => {
                let h = RequestHeader::decode(&mut frame)?;
                let req = Request::decode(h.opcode, frame)?;
                opcodes.insert(h.xid, h.opcode);
                println!("client -> xid {:>3} {} {}", h.xid, h.opcode, describe_request(&req));
            }
            "S" => {
                let h = ReplyHeader::decode(&mut frame)?;
                if h.xid == zk_proto::xid::NOTIFICATION {
                    let ev = WatcherEvent::decode(&mut frame)?;
                    println!("server <- watch event {} on {}", EventType::from(ev.event_type), ev.path);
                    continue;
                }
                let op = opcodes.get(&h.xid).copied().unwrap_or(OpCode::Unknown(0));
                if !h.err.is_ok() && !matches!(op, OpCode::Multi | OpCode::MultiRead) {
                    println!("server <- xid {:>3} {op} failed: {} ({})", h.xid, h.err, h.err.description());
                    continue;
                }
                let rsp = Response::decode(op, frame)?;
                println!(
                    "server <- xid {:>3} {op} ok, zxid {:#x} {}",
                    h.xid,
                    h.zxid,
                    describe_response(&rsp)
                );
            }
            other => return Err(format!("line {}: unknown direction {other}", n + 1).into()),
        }
    }
    Ok(())
}
