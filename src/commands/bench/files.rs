//! Each connection is an open file. Linux starts processes with a soft limit of 1024 (and
//! emqtt-bench users meet it at a few hundred connections): raise it to the hard limit, and
//! when even that cannot hold -c connections, say so before connecting any.

use anyhow::Result;

use crate::exit::usage;

/// stdin/out/err, the runtime's own descriptors, a relay's listener: room beside the sockets.
const SPARE: u64 = 64;

/// Raises the soft limit on open files to the hard limit; a usage error if `needed`
/// connections (each `per_client` descriptors) cannot fit under it.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux and macOS, not on every Unix
pub fn make_room(clients: u64, per_client: u64) -> Result<()> {
    let needed = clients.saturating_mul(per_client).saturating_add(SPARE);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(()); // nothing known: let the connections say what fails
    }
    let hard = lim.rlim_max as u64;
    if (lim.rlim_cur as u64) < needed && lim.rlim_cur < lim.rlim_max {
        // macOS refuses more than OPEN_MAX whatever the hard limit says.
        #[cfg(target_os = "macos")]
        let target = lim.rlim_max.min(libc::OPEN_MAX as libc::rlim_t);
        #[cfg(not(target_os = "macos"))]
        let target = lim.rlim_max;
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = target;
        }
    }
    let soft = lim.rlim_cur as u64;
    if soft < needed {
        return Err(usage(format!(
            "-c {clients} needs about {needed} open files, and this process may open {soft} (hard limit {hard}): raise the hard limit (ulimit -Hn as root, LimitNOFILE= under systemd, nofile in limits.conf) or spread the clients over more machines with --client-offset"
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn make_room(_clients: u64, _per_client: u64) -> Result<()> {
    Ok(())
}
