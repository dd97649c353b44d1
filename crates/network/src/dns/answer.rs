//! How one query is answered: from the records, refused, or forwarded.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::records::{normalize, Records};
use super::MAX_UDP_PAYLOAD;

/// What to do with one query.
#[derive(Debug)]
pub(super) enum Action {
    /// Answer locally with this message.
    Reply(Box<Message>),
    /// Send the raw query to the upstreams.
    Forward,
    /// Drop it (a response, not a query).
    Ignore,
}

/// A response to `req` with its question, id and flags.
fn response(req: &Message, rcode: ResponseCode, authoritative: bool) -> Message {
    let mut m = Message::response(req.metadata.id, req.metadata.op_code);
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.checking_disabled = req.metadata.checking_disabled;
    m.metadata.recursion_available = true;
    m.metadata.authoritative = authoritative;
    m.metadata.response_code = rcode;
    m.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        m.edns = Some(edns);
    }
    m
}

/// The address a full reverse name (`4.3.2.1.in-addr.arpa.`) stands for.
fn arpa_addr(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// Decides how to answer `req` from `records`.
pub(super) fn decide(req: &Message, records: &Records) -> Action {
    if req.metadata.message_type != MessageType::Query {
        return Action::Ignore;
    }
    if req.metadata.op_code != OpCode::Query {
        return Action::Reply(Box::new(response(req, ResponseCode::NotImp, false)));
    }
    let [q] = req.queries.as_slice() else {
        return Action::Reply(Box::new(response(req, ResponseCode::FormErr, false)));
    };
    if q.query_class() != DNSClass::IN {
        return Action::Forward;
    }
    let qtype = q.query_type();
    if qtype == RecordType::PTR {
        let names = arpa_addr(q.name())
            .map(|a| records.names_for(a))
            .unwrap_or_default();
        let answers: Vec<Record> = names
            .iter()
            .filter_map(|n| Name::from_ascii(format!("{n}.")).ok())
            .map(|n| Record::from_rdata(q.name().clone(), 0, RData::PTR(PTR(n))))
            .collect();
        if answers.is_empty() {
            return Action::Forward;
        }
        let mut m = response(req, ResponseCode::NoError, true);
        m.answers = answers;
        return Action::Reply(Box::new(m));
    }
    let qname = q.name().to_ascii();
    if let Some(addrs) = records.find(&qname) {
        let mut m = response(req, ResponseCode::NoError, true);
        for a in addrs {
            let data = match (a, qtype) {
                (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
                (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
                _ => continue,
            };
            m.answers
                .push(Record::from_rdata(q.name().clone(), 0, data));
        }
        return Action::Reply(Box::new(m));
    }
    let plain = normalize(&qname);
    if (!plain.is_empty() && !plain.contains('.')) || records.in_domain(&plain) {
        return Action::Reply(Box::new(response(req, ResponseCode::NXDomain, true)));
    }
    Action::Forward
}

/// Encodes `m`, truncated (TC set, no records) if longer than `limit`.
pub(super) fn encode(m: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = m.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    m.truncate().to_vec().ok()
}

/// The largest UDP answer `req`'s sender takes.
pub(super) fn udp_limit(req: &Message) -> usize {
    match &req.edns {
        Some(e) => usize::from(e.max_payload().clamp(512, MAX_UDP_PAYLOAD)),
        None => 512,
    }
}

/// SERVFAIL for `req`, encoded.
pub(super) fn servfail(req: &Message) -> Option<Vec<u8>> {
    response(req, ResponseCode::ServFail, false).to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::records::tests::recs;
    use hickory_proto::op::Query;
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    #[test]
    fn scoped_names_only_for_their_client() {
        let mut r = recs();
        let client: IpAddr = "10.89.0.7".parse().unwrap();
        r.scoped.insert(
            client,
            BTreeMap::from([("other".to_string(), vec!["10.90.0.2".parse().unwrap()])]),
        );
        assert!(r
            .view_for("10.89.0.8".parse().unwrap())
            .lookup("other")
            .is_empty());
        let v = r.view_for(client);
        assert_eq!(
            v.lookup("other"),
            vec!["10.90.0.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(v.lookup("web"), r.lookup("web"));
        let m = reply(decide(&query("other.", RecordType::A), &v));
        assert_eq!(m.answers.len(), 1);
        let m = reply(decide(&query("other.", RecordType::A), &r));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m
    }

    fn reply(a: Action) -> Message {
        match a {
            Action::Reply(m) => *m,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn decide_answers_forwards_and_refuses() {
        let r = recs();
        let m = reply(decide(&query("web.", RecordType::A), &r));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(m.answers.len(), 1);
        let m = reply(decide(&query("web.", RecordType::ANY), &r));
        assert_eq!(m.answers.len(), 2);
        let m = reply(decide(&query("cache.", RecordType::AAAA), &r));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        let m = reply(decide(&query("web.", RecordType::MX), &r));
        assert!(m.answers.is_empty());
        let m = reply(decide(&query("nope.", RecordType::A), &r));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let m = reply(decide(&query("nope.dns.berth.", RecordType::A), &r));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(matches!(
            decide(&query("example.com.", RecordType::A), &r),
            Action::Forward
        ));
        assert!(matches!(
            decide(&query(".", RecordType::NS), &r),
            Action::Forward
        ));
        let m = reply(decide(
            &query("2.0.89.10.in-addr.arpa.", RecordType::PTR),
            &r,
        ));
        assert_eq!(m.answers.len(), 1);
        assert!(matches!(
            decide(&query("9.9.89.10.in-addr.arpa.", RecordType::PTR), &r),
            Action::Forward
        ));
        let mut resp = query("web.", RecordType::A);
        resp.metadata.message_type = MessageType::Response;
        assert!(matches!(decide(&resp, &r), Action::Ignore));
        let mut two = query("web.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("cache.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(
            reply(decide(&two, &r)).metadata.response_code,
            ResponseCode::FormErr
        );
        let mut upd = query("web.", RecordType::A);
        upd.metadata.op_code = OpCode::Update;
        assert_eq!(
            reply(decide(&upd, &r)).metadata.response_code,
            ResponseCode::NotImp
        );
    }

    #[test]
    fn big_answers_are_truncated_for_udp() {
        let mut r = Records::default();
        r.names.insert(
            "many".into(),
            (0..200u8)
                .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
                .collect(),
        );
        let q = query("many.", RecordType::A);
        let m = reply(decide(&q, &r));
        let bytes = encode(&m, udp_limit(&q)).unwrap();
        assert!(bytes.len() <= 512);
        let back = Message::from_vec(&bytes).unwrap();
        assert!(back.metadata.truncation);
        let full = encode(&m, usize::from(u16::MAX)).unwrap();
        assert_eq!(Message::from_vec(&full).unwrap().answers.len(), 200);
    }
}
