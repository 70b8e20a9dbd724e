//! An eBPF agent's stand-in on a link, for tests of coexistence with one.

use crate::ns::Ns;

/// An eBPF agent's stand-in: a `sched_cls` program that only says "next"
/// (TCX_NEXT), attached to a link's ingress through a tcx link (kernel
/// 6.6+, as Cilium and newer agents attach), held by the link's fd: it
/// stays attached while this value lives.
#[derive(Debug)]
pub struct TcxLink {
    _prog: std::os::fd::OwnedFd,
    _link: std::os::fd::OwnedFd,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_TCX_INGRESS: u32 = 46;

/// bpf(2) with a zero-padded attribute block.
fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<i32> {
    // SAFETY: the kernel reads and writes at most `attr.len()` bytes of the
    // block we own; pointers inside it point at live buffers of the caller.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    i32::try_from(rc).map_err(|_| std::io::Error::other("bpf returned out of range"))
}

fn put(attr: &mut [u8; 128], at: usize, bytes: &[u8]) {
    attr[at..at + bytes.len()].copy_from_slice(bytes);
}

impl Ns {
    /// Attaches a pass-through program to `dev`'s ingress with tcx.
    pub fn attach_tcx_ingress(&self, dev: &str) -> TcxLink {
        use std::os::fd::FromRawFd;
        let index = self.ifindex(dev);
        self.inside(move || {
            // r0 = -1 (TCX_NEXT); exit.
            let insns: [u8; 16] = [
                0xb7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, //
                0x95, 0, 0, 0, 0, 0, 0, 0,
            ];
            let license = b"GPL\0";
            let mut attr = [0u8; 128];
            put(&mut attr, 0, &BPF_PROG_TYPE_SCHED_CLS.to_ne_bytes());
            put(&mut attr, 4, &2u32.to_ne_bytes());
            put(&mut attr, 8, &(insns.as_ptr() as u64).to_ne_bytes());
            put(&mut attr, 16, &(license.as_ptr() as u64).to_ne_bytes());
            put(&mut attr, 68, &BPF_TCX_INGRESS.to_ne_bytes());
            let prog = bpf(BPF_PROG_LOAD, &mut attr).unwrap_or_else(|e| panic!("load bpf program: {e}"));
            // SAFETY: a new fd the kernel just gave us, owned from here on.
            let prog = unsafe { std::os::fd::OwnedFd::from_raw_fd(prog) };
            let mut attr = [0u8; 128];
            let fd = u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&prog)).unwrap_or(0);
            put(&mut attr, 0, &fd.to_ne_bytes());
            put(&mut attr, 4, &index.to_ne_bytes());
            put(&mut attr, 8, &BPF_TCX_INGRESS.to_ne_bytes());
            let link =
                bpf(BPF_LINK_CREATE, &mut attr).unwrap_or_else(|e| panic!("tcx attach to {index}: {e}"));
            // SAFETY: as above.
            let link = unsafe { std::os::fd::OwnedFd::from_raw_fd(link) };
            TcxLink {
                _prog: prog,
                _link: link,
            }
        })
    }

    /// How many programs tcx runs on `dev`'s ingress.
    pub fn tcx_ingress_programs(&self, dev: &str) -> u32 {
        let index = self.ifindex(dev);
        self.inside(move || {
            let mut attr = [0u8; 128];
            put(&mut attr, 0, &index.to_ne_bytes());
            put(&mut attr, 4, &BPF_TCX_INGRESS.to_ne_bytes());
            bpf(BPF_PROG_QUERY, &mut attr).unwrap_or_else(|e| panic!("query tcx of {index}: {e}"));
            u32::from_ne_bytes([attr[24], attr[25], attr[26], attr[27]])
        })
    }
}
