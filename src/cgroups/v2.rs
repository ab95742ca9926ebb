//! cgroup v2: one directory in the unified tree. Values in the spec's
//! v1 vocabulary are converted with the documented formulas (runc's).

use super::devices::Rule;
use super::fs::{self, limit, write};
use super::layout::Layout;
use super::stats;
use super::v1::{pids_max, rdma_line};
use super::Cgroup;
use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

pub struct V2 {
    root: PathBuf,
    rel: PathBuf,
    dir: PathBuf,
}

/// cpu.shares (2..262144) to cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}

/// blkio.weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10) * 9999) / 990
}

/// v1's swap limit is memory+swap; v2's memory.swap.max is swap alone.
pub fn swap_max(limit_bytes: Option<i64>, swap: i64) -> std::result::Result<String, String> {
    match (limit_bytes, swap) {
        (_, s) if s < 0 => Ok("max".into()),
        (Some(l), s) if l >= 0 && s < l => Err(format!(
            "linux.resources.memory.swap {s} is below memory.limit {l} (swap counts memory+swap)"
        )),
        (Some(l), s) if l >= 0 => Ok((s - l).to_string()),
        _ => Err("linux.resources.memory.swap needs a memory.limit on cgroup v2".into()),
    }
}

impl V2 {
    pub fn new(layout: Layout, rel: &Path) -> V2 {
        let root = layout.v2.unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        V2 {
            dir: root.join(rel),
            rel: rel.to_path_buf(),
            root,
        }
    }

    /// Controllers must be enabled in every ancestor's subtree_control for
    /// the container's directory to have their files.
    fn enable_controllers(&self) -> Result<()> {
        let Ok(rel) = self.dir.strip_prefix(&self.root) else {
            return Ok(());
        };
        let mut level = self.root.clone();
        for comp in rel.components() {
            let available = fs::read(&level, "cgroup.controllers").unwrap_or_default();
            let wanted: Vec<String> = available
                .split_whitespace()
                .map(|c| format!("+{c}"))
                .collect();
            if !wanted.is_empty() {
                // A level that refuses some controller (e.g. threaded) keeps
                // the others; missing files surface when a limit needs them.
                let _ = write(&level, "cgroup.subtree_control", &wanted.join(" "));
            }
            level.push(comp);
        }
        Ok(())
    }

    fn unsupported(what: &str) -> Error {
        Error::Other(format!(
            "linux.resources.{what} is not supported on cgroup v2"
        ))
    }

    fn set_memory(&self, r: &LinuxResources) -> Result<()> {
        let Some(m) = r.memory() else { return Ok(()) };
        let d = &self.dir;
        if m.check_before_update().unwrap_or(false) {
            if let Some(l) = m.limit().filter(|l| *l > 0) {
                let usage = fs::read_u64(d, "memory.current");
                if (l as u64) < usage {
                    return Err(Error::Other(format!(
                        "linux.resources.memory.limit {l} is below the current usage {usage}"
                    )));
                }
            }
        }
        if let Some(s) = m.swap().filter(|v| *v != 0) {
            let v = swap_max(m.limit(), s).map_err(Error::Other)?;
            write(d, "memory.swap.max", &v)?;
        }
        if let Some(l) = m.limit().filter(|v| *v != 0) {
            write(d, "memory.max", &limit(l, "max"))?;
        }
        if let Some(res) = m.reservation().filter(|v| *v != 0) {
            write(d, "memory.low", &limit(res, "0"))?;
        }
        if m.swappiness().is_some() {
            return Err(Self::unsupported("memory.swappiness"));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(Self::unsupported("memory.disableOOMKiller"));
        }
        Ok(())
    }

    fn set_cpu(&self, r: &LinuxResources) -> Result<()> {
        let Some(c) = r.cpu() else { return Ok(()) };
        let d = &self.dir;
        if let Some(s) = c.shares().filter(|s| *s > 0) {
            write(d, "cpu.weight", &shares_to_weight(s).to_string())?;
        }
        if c.quota().is_some_and(|q| q != 0) || c.period().is_some_and(|p| p != 0) {
            let quota = c
                .quota()
                .filter(|q| *q != 0)
                .map_or("max".to_string(), |q| limit(q, "max"));
            let period = c.period().filter(|p| *p != 0).unwrap_or(100_000);
            write(d, "cpu.max", &format!("{quota} {period}"))?;
        }
        if let Some(b) = c.burst() {
            write(d, "cpu.max.burst", &b.to_string())?;
        }
        if let Some(i) = c.idle() {
            write(d, "cpu.idle", &i.to_string())?;
        }
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            return Err(Self::unsupported("cpu.realtimeRuntime/realtimePeriod"));
        }
        if let Some(cpus) = c.cpus().as_ref().filter(|v| !v.is_empty()) {
            write(d, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems().as_ref().filter(|v| !v.is_empty()) {
            write(d, "cpuset.mems", mems)?;
        }
        Ok(())
    }

    fn set_io(&self, r: &LinuxResources) -> Result<()> {
        let Some(b) = r.block_io() else { return Ok(()) };
        let d = &self.dir;
        let weight_file = if fs::exists(d, "io.bfq.weight") {
            "io.bfq.weight"
        } else {
            "io.weight"
        };
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            write(
                d,
                weight_file,
                &format!("default {}", blkio_to_io_weight(w)),
            )?;
        }
        if b.leaf_weight().is_some_and(|w| w != 0) {
            return Err(Self::unsupported("blockIO.leafWeight"));
        }
        for dev in b.weight_device().iter().flatten() {
            if let Some(w) = dev.weight() {
                let v = format!("{}:{} {}", dev.major(), dev.minor(), blkio_to_io_weight(w));
                write(d, weight_file, &v)?;
            }
        }
        for (list, key) in [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ] {
            for t in list.iter().flatten() {
                write(
                    d,
                    "io.max",
                    &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
        Ok(())
    }

    fn set_misc(&self, r: &LinuxResources) -> Result<()> {
        let d = &self.dir;
        if let Some(p) = r.pids().as_ref().filter(|p| p.limit() != 0) {
            write(d, "pids.max", &pids_max(p.limit()))?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            let size = h.page_size();
            write(d, &format!("hugetlb.{size}.max"), &h.limit().to_string())?;
            let rsvd = format!("hugetlb.{size}.rsvd.max");
            if fs::exists(d, &rsvd) {
                write(d, &rsvd, &h.limit().to_string())?;
            }
        }
        if r.network().is_some() {
            return Err(Self::unsupported(
                "network (net_cls/net_prio are cgroup v1 only)",
            ));
        }
        for (dev, lim) in r.rdma().iter().flatten() {
            write(d, "rdma.max", &rdma_line(dev, lim))?;
        }
        for (key, value) in r.unified().iter().flatten() {
            if key.contains('/') || key.starts_with('.') {
                return Err(Error::Other(format!(
                    "linux.resources.unified: {key:?} is not a cgroup file name"
                )));
            }
            write(d, key, value)?;
        }
        Ok(())
    }
}

impl Cgroup for V2 {
    fn create_clone_target(&self) -> Result<()> {
        fs::mkdir_all(&self.dir)?;
        self.enable_controllers()
    }

    fn create_rest(&self) -> Result<()> {
        Ok(())
    }

    fn add(&self, pid: i32) -> Result<()> {
        write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        self.set_memory(r)?;
        self.set_cpu(r)?;
        self.set_io(r)?;
        self.set_misc(r)
    }

    fn set_devices(&self, rules: &[Rule]) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let spec_rules: Vec<_> = rules.iter().map(Rule::to_spec).collect();
        let dir = std::fs::File::open(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        super::devices_bpf::attach(std::os::fd::AsFd::as_fd(&dir), &spec_rules)
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        write(&self.dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        let want = u64::from(frozen);
        fs::wait_until("cgroup.events frozen", || {
            fs::read_keyed(&self.dir, "cgroup.events").get("frozen") == Some(&want)
        })
    }

    fn is_frozen(&self) -> bool {
        fs::read_keyed(&self.dir, "cgroup.events").get("frozen") == Some(&1)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        Ok(fs::pids(&self.dir))
    }

    fn stats(&self) -> serde_json::Value {
        stats::v2(&self.dir)
    }

    fn oom_kills(&self) -> u64 {
        fs::read_keyed(&self.dir, "memory.events")
            .get("oom_kill")
            .copied()
            .unwrap_or(0)
    }

    fn destroy(&self) -> Result<()> {
        fs::remove(&self.dir)
    }

    fn path(&self) -> &Path {
        &self.rel
    }

    fn placement_dirs(&self) -> super::Dirs {
        super::Dirs {
            unified: Some(self.dir.clone()),
            v1: Vec::new(),
        }
    }

    /// One tree: only the "" form, as runc (a controller name is unknown).
    fn below(&self, subs: &super::SubPaths) -> Result<super::Dirs> {
        if let Some(c) = super::unknown_controller(subs, &[]) {
            return Err(super::unknown(c));
        }
        let dir = match subs.get("") {
            Some(sub) => super::descend(&self.dir, sub)?,
            None => self.dir.clone(),
        };
        Ok(super::Dirs {
            unified: Some(dir),
            v1: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_follow_the_documented_formulas() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(swap_max(Some(100), 300).unwrap(), "200");
        assert_eq!(swap_max(Some(100), -1).unwrap(), "max");
        assert!(swap_max(Some(300), 100).is_err());
    }

    /// The v2 code on a real cgroup2 tree. This host is hybrid: its cgroup2
    /// tree holds no controllers, but processes, freezing and the eBPF
    /// device filter work there all the same.
    #[test]
    fn v2_manager_on_a_real_cgroup2_tree() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test makes cgroups: run it as root"
        );
        let layout = Layout::detect().expect("cgroup layout");
        let Some(root) = layout.v2.clone() else {
            panic!("no cgroup2 mount on this host: the v2 code cannot be tested");
        };
        let rel = PathBuf::from(format!("brig-v2test-{}", std::process::id()));
        let cg = V2::new(layout, &rel);
        struct Cleanup(PathBuf, std::process::Child);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = self.1.kill();
                let _ = self.1.wait();
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        cg.create().expect("create");
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        let _guard = Cleanup(root.join(&rel), child);
        cg.add(pid).expect("add");
        assert_eq!(cg.pids().expect("pids"), vec![pid]);
        let want = crate::cgroups::Dirs {
            unified: Some(root.join(&rel)),
            v1: Vec::new(),
        };
        assert_eq!(cg.placement_dirs(), want);
        cg.freeze(true).expect("freeze");
        assert!(cg.is_frozen());
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        assert!(stat.contains(") S "), "frozen sleep should sleep: {stat}");
        cg.freeze(false).expect("thaw");
        assert!(!cg.is_frozen());
        let deny_null = vec![
            Rule {
                allow: false,
                kind: 'a',
                major: None,
                minor: None,
                access: "rwm".into(),
            },
            Rule {
                allow: true,
                kind: 'c',
                major: Some(1),
                minor: Some(5),
                access: "rwm".into(),
            },
        ];
        cg.set_devices(&deny_null).expect("device filter");
        assert_eq!(cg.oom_kills(), 0);
    }
}
