//! Test helpers: raw DNS queries over UDP and TCP on loopback, and a tiny fake upstream
//! nameserver on 127.0.0.1 (tests never query real internet names).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("valid name")
}

fn request(qname: &str, qtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.id = rand_id();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name(qname), qtype));
    message
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One query over UDP; panics after 5 s without an answer.
pub async fn query(server: SocketAddr, qname: &str, qtype: RecordType) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind client socket");
    let message = request(qname, qtype);
    socket.send_to(&message.to_vec().expect("encode"), server).await.expect("send");
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("an answer within 5 s")
        .expect("recv");
    let response = Message::from_vec(&buf[..n]).expect("decode response");
    assert_eq!(response.metadata.id, message.metadata.id);
    response
}

/// One query over TCP (RFC 1035 4.2.2 length prefix).
pub async fn query_tcp(server: SocketAddr, qname: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server).await.expect("connect");
    let bytes = request(qname, qtype).to_vec().expect("encode");
    let len = u16::try_from(bytes.len()).expect("short query");
    stream.write_all(&len.to_be_bytes()).await.expect("write");
    stream.write_all(&bytes).await.expect("write");
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len)).await.expect("answer").expect("read");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.expect("read");
    Message::from_vec(&buf).expect("decode response")
}

/// The A/AAAA addresses of the answer section, as strings.
pub fn addresses(message: &Message) -> Vec<String> {
    let mut out: Vec<String> = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// A fake upstream nameserver on 127.0.0.1 (UDP): `<anything>.upstream.test.` has A 192.0.2.1
/// and every other name is NXDOMAIN. Stops when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    cancel: CancellationToken,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub const UPSTREAM_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind fake upstream");
        let addr = socket.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let (n, from) = tokio::select! {
                    _ = token.cancelled() => return,
                    r = socket.recv_from(&mut buf) => match r { Ok(r) => r, Err(_) => return },
                };
                let Ok(req) = Message::from_vec(&buf[..n]) else { continue };
                let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
                resp.metadata.recursion_desired = req.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                resp.add_queries(req.queries.clone());
                if let Some(q) = req.queries.first() {
                    let upstream = name("upstream.test.");
                    if upstream.zone_of(q.name()) && q.query_type() == RecordType::A {
                        resp.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(UPSTREAM_IP))));
                    } else if !upstream.zone_of(q.name()) {
                        resp.metadata.response_code = ResponseCode::NXDomain;
                        let soa = SOA::new(name("ns.test."), name("admin.test."), 1, 60, 60, 60, 60);
                        resp.add_authority(Record::from_rdata(name("test."), 60, RData::SOA(soa)));
                    }
                }
                if let Ok(bytes) = resp.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        FakeUpstream { addr, cancel }
    }
}
