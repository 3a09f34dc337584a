//! Receive times from the kernel (Linux `SO_TIMESTAMPNS`), so latency is measured to
//! the moment a line reached the member's socket, not to the moment this one-core
//! generator got round to reading it.
//!
//! Why: when one message fans out to 1,000 members, the generator reads 1,000
//! sockets one after the other, a few microseconds each; a receive time taken after
//! `read` returns then adds up to milliseconds of the generator's own work to the
//! server's latency (measured: p50 4 ms for a bare relay at 10,000 deliveries/s,
//! where kernel timestamps show the relay's real figure). The kernel stamps each
//! packet as loopback hands it over, with the real-time clock; [`RxClock`] maps that
//! onto the process's monotonic send clock. `--user-receive-time` turns this off.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, sockopt};
use tokio::io::Interest;
use tokio::net::tcp::OwnedReadHalf;

use crate::conn::READ_CHUNK;

/// Maps kernel real-time stamps onto the nanoseconds of a monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct RxClock {
    /// Real time (ns since the Unix epoch) when the monotonic clock read zero.
    origin_ns: i128,
}

impl RxClock {
    /// A mapping for the monotonic clock that started at `clock`.
    pub fn new(clock: Instant) -> Self {
        let now_real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Self {
            origin_ns: now_real - clock.elapsed().as_nanos() as i128,
        }
    }

    /// Nanoseconds on the monotonic clock for a kernel real-time stamp.
    fn to_clock(self, seconds: i64, nanos: i64) -> u64 {
        let real = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
        (real - self.origin_ns).max(0) as u64
    }

    /// Nanoseconds on the monotonic clock for a real time in ns since the epoch
    /// (from [`recv_stamped`]).
    pub fn real_to_clock(self, real_ns: u64) -> u64 {
        (i128::from(real_ns) - self.origin_ns).max(0) as u64
    }
}

/// Asks the kernel to stamp what arrives on this socket.
pub fn enable(read: &OwnedReadHalf) -> io::Result<()> {
    enable_on(read.as_ref())
}

/// [`enable`] on a whole stream.
pub fn enable_on(stream: &tokio::net::TcpStream) -> io::Result<()> {
    socket::setsockopt(stream, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// A thread's buffers for `recvmsg`: the data, then copied into the member's own
/// buffer, and the control message. One per thread, not one per member: 1,000
/// members would otherwise hold 64 MiB of receive buffers.
struct Buffers {
    data: Vec<u8>,
    control: Vec<u8>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers {
        data: vec![0; READ_CHUNK],
        control: nix::cmsg_space!(nix::sys::time::TimeSpec),
    });
}

/// One non-blocking `recvmsg` on `fd` into `data`: the bytes read and the kernel's
/// receive stamp of them (real time, ns since the epoch), if it gave one.
pub fn recv_stamped(fd: RawFd, data: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    BUFFERS.with_borrow_mut(|Buffers { control, .. }| {
        let mut iov = [io::IoSliceMut::new(data)];
        let msg = socket::recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::empty())
            .map_err(io::Error::from)?;
        let stamp = msg.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|cmsg| match cmsg {
                ControlMessageOwned::ScmTimestampns(ts) => {
                    Some((ts.tv_sec() as u64).wrapping_mul(1_000_000_000) + ts.tv_nsec() as u64)
                }
                _ => None,
            })
        });
        Ok((msg.bytes, stamp))
    })
}

/// Reads once into `buf`, returning the bytes read and the kernel's receive time of
/// the data on `clock`, if it gave one.
pub async fn read_stamped(
    read: &OwnedReadHalf,
    buf: &mut BytesMut,
    clock: RxClock,
) -> io::Result<(usize, Option<u64>)> {
    loop {
        read.readable().await?;
        let fd = read.as_ref().as_raw_fd();
        // The buffers are borrowed only inside this synchronous closure.
        let result = read.as_ref().try_io(Interest::READABLE, || {
            BUFFERS.with_borrow_mut(|Buffers { data, control }| {
                let mut iov = [io::IoSliceMut::new(data)];
                let msg = socket::recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::empty())
                    .map_err(io::Error::from)?;
                let stamp = msg.cmsgs().ok().and_then(|mut cmsgs| {
                    cmsgs.find_map(|cmsg| match cmsg {
                        ControlMessageOwned::ScmTimestampns(ts) => {
                            Some(clock.to_clock(ts.tv_sec(), ts.tv_nsec()))
                        }
                        _ => None,
                    })
                });
                let read_bytes = msg.bytes;
                buf.extend_from_slice(&data[..read_bytes]);
                Ok((read_bytes, stamp))
            })
        });
        match result {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}
