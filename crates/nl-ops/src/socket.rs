//! A synchronous NETLINK_ROUTE socket bound to one network namespace.

use cni_netns::NetNs;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, ParseableParametrized, NLMSG_DONE, NLMSG_ERROR,
    NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_ECHO, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, SocketAddr};

use crate::error::{Error, Result};
use crate::raw;

/// Dumps the kernel marks as interrupted (the object set changed while it
/// was being walked) are redone this many times before giving up with EAGAIN.
const DUMP_ATTEMPTS: usize = 5;
const NLMSG_HDRLEN: usize = 16;
/// NLMSGERR_ATTR_MSG: the extack text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Receive buffer. Dump datagrams are at most 32 KiB (the kernel caps them
/// there whatever the reader offers) and single replies of the objects we ask
/// for are a few KiB, so one `recv` always gets a whole datagram.
const RECV_BUF: usize = 64 * 1024;
/// How long a reply may take to arrive. rtnetlink does its work while we
/// send (waiting for the RTNL lock included), so the reply is queued by the
/// time `send` returns; a reply that has not come after this never will,
/// and an error beats a plugin hanging with its lock held.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Socket {
    sock: netlink_sys::Socket,
    seq: u32,
    /// Our port id, to ignore anything not addressed to this socket.
    port: u32,
    buf: Vec<u8>,
}

/// One netlink message of a reply, still raw: type, flags and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawMsg {
    pub kind: u16,
    pub payload: Vec<u8>,
}

/// What one received datagram told us.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub msgs: Vec<RawMsg>,
    /// NLMSG_DONE, or the ACK / error that ends a request.
    pub done: bool,
    pub interrupted: bool,
}

impl Socket {
    /// A socket in the calling thread's namespace, with strict checking on.
    pub fn new() -> Result<Socket> {
        let io = |op: &str| {
            let op = op.to_string();
            move |source| Error::Io { op, source }
        };
        let mut sock = netlink_sys::Socket::new(NETLINK_ROUTE).map_err(io("open netlink socket"))?;
        let addr = sock.bind_auto().map_err(io("bind netlink socket"))?;
        // Strict checking makes the kernel filter dumps by the header we send
        // (and reject headers it does not understand instead of ignoring them).
        sock.set_netlink_get_strict_chk(true)
            .map_err(io("enable netlink strict checking"))?;
        // Extended acks carry the kernel's own reason text; harmless when absent.
        let _ = sock.set_ext_ack(true);
        let mut s = Socket {
            sock,
            seq: 0,
            port: addr.port_number(),
            buf: vec![0; RECV_BUF],
        };
        s.set_reply_timeout(REPLY_TIMEOUT)
            .map_err(io("set the netlink reply timeout"))?;
        Ok(s)
    }

    fn set_reply_timeout(&mut self, t: std::time::Duration) -> std::io::Result<()> {
        use nix::sys::time::{TimeVal, TimeValLike};
        let us = i64::try_from(t.as_micros())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let tv = TimeVal::microseconds(us);
        nix::sys::socket::setsockopt(&self.sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .map_err(std::io::Error::from)
    }

    /// A socket that lives in `ns`: created inside a scoped switch, usable
    /// from here after the thread has switched back.
    pub fn in_netns(ns: &NetNs) -> Result<Socket> {
        ns.run(Socket::new).map_err(Error::Netns)?
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16, op: &dyn Fn() -> String) -> Result<u32> {
        let seq = self.next_seq();
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.send_bytes(&out, op)?;
        Ok(seq)
    }

    fn send_bytes(&mut self, out: &[u8], op: &dyn Fn() -> String) -> Result<()> {
        let kernel = SocketAddr::new(0, 0);
        loop {
            match self.sock.send_to(out, &kernel, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(Error::Io { op: op(), source }),
            }
        }
    }

    /// Receives one datagram into the buffer with a single `recv`. MSG_TRUNC
    /// makes the kernel report the datagram's real length, so a datagram that
    /// did not fit is an error instead of a silently cut reply.
    fn recv_datagram(&mut self, op: &dyn Fn() -> String) -> Result<usize> {
        loop {
            let mut slice: &mut [u8] = &mut self.buf[..];
            match self.sock.recv(&mut slice, libc::MSG_TRUNC) {
                Ok(n) if n > self.buf.len() => {
                    return Err(Error::Protocol {
                        op: op(),
                        msg: format!(
                            "netlink reply of {n} bytes does not fit the {} byte receive buffer",
                            self.buf.len()
                        ),
                    })
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Err(Error::Kernel {
                        op: format!("{} (no reply from the kernel in time)", op()),
                        errno: libc::EAGAIN,
                    })
                }
                Err(source) => return Err(Error::Io { op: op(), source }),
            }
        }
    }

    /// Sends `msg` and collects the replies with its sequence number until
    /// the request is finished: NLMSG_DONE for dumps, the ACK otherwise.
    /// Gets ask for the ACK too: a tc get that finds only a built-in qdisc
    /// succeeds without sending anything, and would leave us waiting.
    fn transact(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &dyn Fn() -> String,
    ) -> Result<(Vec<RawMsg>, bool)> {
        let seq = self.send(msg, flags, op)?;
        let port = self.port;
        let mut msgs = Vec::new();
        let mut interrupted = false;
        loop {
            let n = self.recv_datagram(op)?;
            let batch = parse_datagram(&self.buf[..n], seq, port, op)?;
            interrupted |= batch.interrupted;
            msgs.extend(batch.msgs);
            if batch.done {
                return Ok((msgs, interrupted));
            }
        }
    }

    /// Several changes in one datagram: the kernel runs them one after the
    /// other within a single send, so no kill of this process falls
    /// between them. Each is acked on its own; one result each, in order
    /// (a failed one does not stop the next).
    pub(crate) fn change_all(
        &mut self,
        msgs: Vec<(RouteNetlinkMessage, u16)>,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<Result<()>>> {
        let mut out = Vec::new();
        let mut seqs = Vec::new();
        for (msg, flags) in msgs {
            let seq = self.next_seq();
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
            header.sequence_number = seq;
            let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
            nl.finalize();
            let at = out.len();
            out.resize(at + raw::align4(nl.buffer_len()), 0);
            nl.serialize(&mut out[at..at + nl.buffer_len()]);
            seqs.push(seq);
        }
        self.send_bytes(&out, op)?;
        let port = self.port;
        let mut results = Vec::new();
        for seq in seqs {
            let acked = loop {
                let n = match self.recv_datagram(op) {
                    Ok(n) => n,
                    Err(e) => break Err(e),
                };
                match parse_datagram(&self.buf[..n], seq, port, op) {
                    Ok(b) if b.done => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(e),
                }
            };
            results.push(acked);
        }
        Ok(results)
    }

    /// A change (new, set, delete): ACK requested, Ok once the kernel acks.
    pub(crate) fn change(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &dyn Fn() -> String,
    ) -> Result<()> {
        self.transact(msg, NLM_F_REQUEST | NLM_F_ACK | flags, op)?;
        Ok(())
    }

    /// A single get: the replies before the ACK.
    pub(crate) fn get(&mut self, msg: RouteNetlinkMessage, op: &dyn Fn() -> String) -> Result<Vec<RawMsg>> {
        Ok(self.transact(msg, NLM_F_REQUEST | NLM_F_ACK, op)?.0)
    }

    /// A get whose reply the kernel only unicasts when asked for an echo
    /// (tc objects: RTM_GETQDISC and RTM_GETTFILTER).
    pub(crate) fn get_echo(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<RawMsg>> {
        Ok(self.transact(msg, NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO, op)?.0)
    }

    /// A dump, redone while the kernel reports it interrupted.
    pub(crate) fn dump(&mut self, msg: RouteNetlinkMessage, op: &dyn Fn() -> String) -> Result<Vec<RawMsg>> {
        for _ in 0..DUMP_ATTEMPTS {
            let (msgs, interrupted) = self.transact(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP, op)?;
            if !interrupted {
                return Ok(msgs);
            }
            log::debug!("{}: dump interrupted, retrying", op());
        }
        Err(Error::Kernel {
            op: format!("{} (dump kept being interrupted)", op()),
            errno: libc::EAGAIN,
        })
    }

    /// A dump decoded with netlink-packet-route.
    pub(crate) fn dump_typed(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.dump(msg, op)?.iter().map(|m| decode(m, op)).collect()
    }
}

/// Decodes one raw reply into the typed message.
pub(crate) fn decode(m: &RawMsg, op: &dyn Fn() -> String) -> Result<RouteNetlinkMessage> {
    RouteNetlinkMessage::parse_with_param(m.payload.as_slice(), m.kind).map_err(|e| Error::Protocol {
        op: op(),
        msg: format!("cannot decode netlink message type {}: {e}", m.kind),
    })
}

/// Splits one datagram into messages for request `seq`. Messages for other
/// sequence numbers (late replies to an abandoned request) are skipped.
pub(crate) fn parse_datagram(buf: &[u8], seq: u32, port: u32, op: &dyn Fn() -> String) -> Result<Batch> {
    let mut batch = Batch::default();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let h = &buf[off..];
        let len = raw::u32_at(h, 0) as usize;
        let kind = raw::u16_at(h, 4);
        let flags = raw::u16_at(h, 6);
        let mseq = raw::u32_at(h, 8);
        let mport = raw::u32_at(h, 12);
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return Err(Error::Protocol {
                op: op(),
                msg: format!("malformed netlink message (length {len})"),
            });
        }
        let payload = &h[NLMSG_HDRLEN..len];
        off += raw::align4(len);
        if mseq != seq || (mport != 0 && port != 0 && mport != port) {
            log::debug!("{}: skipping netlink message seq {mseq} (want {seq})", op());
            continue;
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            batch.interrupted = true;
        }
        match kind {
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => {
                return Err(Error::Protocol {
                    op: op(),
                    msg: "netlink overrun".into(),
                })
            }
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(Error::Protocol {
                        op: op(),
                        msg: "truncated netlink error".into(),
                    });
                }
                let code = raw::i32_at(payload, 0);
                if code != 0 {
                    // Payload: errno, the request's header (and body unless
                    // capped), then extack attributes.
                    let mut tlv = 4 + NLMSG_HDRLEN;
                    if flags & NLM_F_CAPPED == 0 && payload.len() >= 4 + NLMSG_HDRLEN {
                        tlv = 4 + raw::align4(raw::u32_at(payload, 4) as usize);
                    }
                    return Err(kernel_error(op, -code, extack(flags, payload.get(tlv..))));
                }
                batch.done = true;
                return Ok(batch);
            }
            NLMSG_DONE => {
                // An error can ride on the DONE of a dump.
                let code = if payload.len() >= 4 {
                    raw::i32_at(payload, 0)
                } else {
                    0
                };
                if code != 0 {
                    return Err(kernel_error(op, -code, extack(flags, payload.get(4..))));
                }
                batch.done = true;
                return Ok(batch);
            }
            _ => {
                batch.msgs.push(RawMsg {
                    kind,
                    payload: payload.to_vec(),
                });
            }
        }
    }
    Ok(batch)
}

/// The kernel's reason text among the attributes after an error, when the
/// message says it carries them (NLM_F_ACK_TLVS).
fn extack(flags: u16, tlvs: Option<&[u8]>) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    raw::attrs(tlvs?)
        .find(|(k, _)| *k == NLMSGERR_ATTR_MSG)
        .map(|(_, v)| raw::c_string(v))
        .filter(|s| !s.is_empty())
}

fn kernel_error(op: &dyn Fn() -> String, errno: i32, text: Option<String>) -> Error {
    let errno = errno.abs();
    let op = match text {
        Some(t) => format!("{} ({})", op(), t.trim_end_matches('.').to_lowercase()),
        None => op(),
    };
    Error::Kernel { op, errno }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NLM_F_MULTIPART;

    fn msg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&u32::try_from(16 + payload.len()).unwrap().to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn op() -> String {
        "dump routes".into()
    }

    #[test]
    fn a_reply_that_never_comes_is_try_again_not_a_hang() {
        let mut sock = Socket::new().unwrap();
        sock.set_reply_timeout(std::time::Duration::from_millis(20))
            .unwrap();
        // Nothing was asked, so nothing will arrive.
        let e = sock.recv_datagram(&op).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EAGAIN), "{e}");
        assert_eq!(cni_spec::CniError::from(e).code, cni_spec::Code::TryAgainLater);
    }

    #[test]
    fn error_inside_done_is_an_error_not_an_empty_list() {
        let mut payload = (-libc::ENOENT).to_ne_bytes().to_vec();
        // extack: NLMSGERR_ATTR_MSG "FIB table does not exist"
        let text = b"FIB table does not exist\0";
        let len = 4 + text.len();
        payload.extend_from_slice(&u16::try_from(len).unwrap().to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        let buf = msg(NLMSG_DONE, NLM_F_MULTIPART | NLM_F_ACK_TLVS, 7, &payload);
        let e = parse_datagram(&buf, 7, 0, &op).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(
            e.to_string(),
            "dump routes (fib table does not exist): no such file or directory"
        );
    }

    #[test]
    fn done_without_error_ends_the_dump() {
        let mut buf = msg(24, NLM_F_MULTIPART, 3, &[1, 2, 3, 4]);
        buf.extend(msg(NLMSG_DONE, NLM_F_MULTIPART, 3, &0i32.to_ne_bytes()));
        let b = parse_datagram(&buf, 3, 0, &op).unwrap();
        assert!(b.done);
        assert!(!b.interrupted);
        assert_eq!(
            b.msgs,
            vec![RawMsg {
                kind: 24,
                payload: vec![1, 2, 3, 4]
            }]
        );
    }

    #[test]
    fn interrupted_flag_and_foreign_sequence_numbers() {
        let mut buf = msg(24, NLM_F_MULTIPART, 2, &[9, 9, 9, 9]);
        buf.extend(msg(24, NLM_F_MULTIPART | NLM_F_DUMP_INTR, 3, &[1, 2, 3, 4]));
        let b = parse_datagram(&buf, 3, 0, &op).unwrap();
        assert!(!b.done);
        assert!(b.interrupted);
        assert_eq!(b.msgs.len(), 1);
    }

    #[test]
    fn nack_with_errno() {
        let mut payload = (-libc::EEXIST).to_ne_bytes().to_vec();
        payload.extend(msg(16, NLM_F_REQUEST, 5, &[0; 16]));
        let buf = msg(NLMSG_ERROR, 0, 5, &payload);
        let e = parse_datagram(&buf, 5, 0, &op).unwrap_err();
        assert!(e.is_exists());
        assert_eq!(e.to_string(), "dump routes: file exists");
        let ack = msg(NLMSG_ERROR, NLM_F_CAPPED, 5, &[0; 20]);
        assert!(parse_datagram(&ack, 5, 0, &op).unwrap().done);
    }
}
