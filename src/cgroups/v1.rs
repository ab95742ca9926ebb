//! cgroup v1: a directory per hierarchy. On a hybrid host the container
//! also joins the cgroup2 tree, where its processes are tracked (as runc does).

use super::devices;
use super::fs::{self, limit, write};
use super::layout::{Layout, Mode};
use super::stats;
use super::Cgroup;
use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

pub struct V1 {
    layout: Layout,
    rel: PathBuf,
}

impl V1 {
    pub fn new(layout: Layout, rel: &Path) -> V1 {
        V1 {
            layout,
            rel: rel.to_path_buf(),
        }
    }

    /// The container's directory in the hierarchy carrying `controller`.
    fn dir(&self, controller: &str) -> Result<PathBuf> {
        self.layout
            .v1
            .get(controller)
            .map(|mp| mp.join(&self.rel))
            .ok_or_else(|| {
                Error::Other(format!("cgroup v1 controller {controller} is not mounted"))
            })
    }

    /// On a hybrid host, a controller that no v1 hierarchy carries may be
    /// bound to the cgroup2 tree instead (systemd leaves hugetlb there): the
    /// container's cgroup2 directory, with the controller enabled on the way
    /// down to it. None when cgroup2 does not have it either.
    fn unified_with(&self, controller: &str) -> Result<Option<PathBuf>> {
        let (Mode::Hybrid, Some(root)) = (self.layout.mode, &self.layout.v2) else {
            return Ok(None);
        };
        let has = |dir: &Path| {
            fs::read(dir, "cgroup.controllers")
                .is_some_and(|c| c.split_whitespace().any(|x| x == controller))
        };
        if !has(root) {
            return Ok(None);
        }
        let mut level = root.clone();
        for comp in self.rel.components() {
            let on = fs::read(&level, "cgroup.subtree_control")
                .is_some_and(|c| c.split_whitespace().any(|x| x == controller));
            if !on {
                write(&level, "cgroup.subtree_control", &format!("+{controller}"))?;
            }
            level.push(comp);
        }
        Ok(Some(level))
    }

    /// Every directory of the container: one per hierarchy, plus cgroup2 on hybrid.
    fn dirs(&self) -> Vec<PathBuf> {
        let mut d = self.v1_dirs();
        d.extend(self.unified_dir());
        d
    }

    fn v1_dirs(&self) -> Vec<PathBuf> {
        self.layout
            .hierarchies()
            .into_keys()
            .map(|mp| mp.join(&self.rel))
            .collect()
    }

    /// The container's cgroup2 directory on a hybrid host.
    fn unified_dir(&self) -> Option<PathBuf> {
        match (self.layout.mode, &self.layout.v2) {
            (Mode::Hybrid, Some(v2)) => Some(v2.join(&self.rel)),
            _ => None,
        }
    }

    /// A new cpuset cgroup starts with no cpus and no mems, and a process
    /// cannot join it; fill every level from its parent, as runc does.
    fn init_cpuset(&self) -> Result<()> {
        let Some(root) = self.layout.v1.get("cpuset") else {
            return Ok(());
        };
        let mut dir = root.clone();
        for comp in self.rel.components() {
            let parent = dir.clone();
            dir.push(comp);
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if fs::read(&dir, file).is_some_and(|v| v.is_empty()) {
                    let v = fs::read(&parent, file).unwrap_or_default();
                    write(&dir, file, &v)?;
                }
            }
        }
        Ok(())
    }

    fn set_memory(&self, r: &LinuxResources) -> Result<()> {
        let Some(m) = r.memory() else { return Ok(()) };
        let dir = self.dir("memory")?;
        if m.check_before_update().unwrap_or(false) {
            if let Some(l) = m.limit().filter(|l| *l > 0) {
                let usage = fs::read_u64(&dir, "memory.usage_in_bytes");
                if (l as u64) < usage {
                    return Err(Error::Other(format!(
                        "linux.resources.memory.limit {l} is below the current usage {usage}"
                    )));
                }
            }
        }
        if let Some(res) = m.reservation().filter(|v| *v != 0) {
            write(&dir, "memory.soft_limit_in_bytes", &limit(res, "-1"))?;
        }
        // memory+swap may never be below memory: the order of the two writes
        // depends on whether the limits grow or shrink.
        let mem = m.limit().filter(|v| *v != 0).map(|l| limit(l, "-1"));
        // Unlimited memory with memory+swap left as it was would be refused
        // (memory+swap may not be below memory): unlimited both, as runc.
        let swap_given = m.swap().filter(|v| *v != 0);
        let swap_given = match (m.limit(), swap_given) {
            (Some(-1), None) if fs::exists(&dir, "memory.memsw.limit_in_bytes") => Some(-1),
            (_, s) => s,
        };
        let swap = swap_given.map(|s| limit(s, "-1"));
        match (mem, swap) {
            (Some(mem), Some(swap)) => {
                let first = write(&dir, "memory.limit_in_bytes", &mem)
                    .and_then(|_| write(&dir, "memory.memsw.limit_in_bytes", &swap));
                if first.is_err() {
                    write(&dir, "memory.memsw.limit_in_bytes", &swap)?;
                    write(&dir, "memory.limit_in_bytes", &mem)?;
                }
            }
            (Some(mem), None) => write(&dir, "memory.limit_in_bytes", &mem)?,
            (None, Some(swap)) => write(&dir, "memory.memsw.limit_in_bytes", &swap)?,
            (None, None) => {}
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(Error::Other(format!(
                    "linux.resources.memory.swappiness {s} is above 100"
                )));
            }
            write(&dir, "memory.swappiness", &s.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            write(&dir, "memory.oom_control", "1")?;
        }
        // Where the kernel still has it (cgroup v1 kmem accounting).
        if let Some(tcp) = m.kernel_tcp().filter(|v| *v != 0) {
            if fs::exists(&dir, "memory.kmem.tcp.limit_in_bytes") {
                write(&dir, "memory.kmem.tcp.limit_in_bytes", &limit(tcp, "-1"))?;
            }
        }
        Ok(())
    }

    fn set_cpu(&self, r: &LinuxResources) -> Result<()> {
        let Some(c) = r.cpu() else { return Ok(()) };
        if c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.realtime_period().is_some()
            || c.realtime_runtime().is_some()
            || c.idle().is_some()
        {
            let dir = self.dir("cpu")?;
            if let Some(s) = c.shares().filter(|v| *v != 0) {
                write(&dir, "cpu.shares", &s.to_string())?;
            }
            // A period shorter than the current one may be refused (EINVAL)
            // while the old quota over the new period exceeds a parent's
            // quota; with a new quota coming, it is retried after it, as runc.
            let mut period_later = None;
            if let Some(p) = c.period().filter(|v| *v != 0) {
                match write(&dir, "cpu.cfs_period_us", &p.to_string()) {
                    Ok(()) => {}
                    Err(_) if c.quota().is_some_and(|q| q != 0) => period_later = Some(p),
                    Err(e) => return Err(e),
                }
            }
            if let Some(q) = c.quota().filter(|v| *v != 0) {
                write(&dir, "cpu.cfs_quota_us", &limit(q, "-1"))?;
            }
            if let Some(p) = period_later {
                write(&dir, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(b) = c.burst() {
                write(&dir, "cpu.cfs_burst_us", &b.to_string())?;
            }
            if let Some(p) = c.realtime_period().filter(|v| *v != 0) {
                write(&dir, "cpu.rt_period_us", &p.to_string())?;
            }
            if let Some(rt) = c.realtime_runtime().filter(|v| *v != 0) {
                write(&dir, "cpu.rt_runtime_us", &rt.to_string())?;
            }
            if let Some(i) = c.idle() {
                write(&dir, "cpu.idle", &i.to_string())?;
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            let dir = self.dir("cpuset")?;
            if let Some(cpus) = c.cpus().as_ref().filter(|v| !v.is_empty()) {
                write(&dir, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems().as_ref().filter(|v| !v.is_empty()) {
                write(&dir, "cpuset.mems", mems)?;
            }
        }
        Ok(())
    }

    fn set_blkio(&self, r: &LinuxResources) -> Result<()> {
        let Some(b) = r.block_io() else { return Ok(()) };
        let dir = self.dir("blkio")?;
        // Kernels with BFQ only have the bfq variants of the weight files.
        let weight_file = |plain: &'static str, bfq: &'static str| {
            if fs::exists(&dir, plain) {
                plain
            } else {
                bfq
            }
        };
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            write(
                &dir,
                weight_file("blkio.weight", "blkio.bfq.weight"),
                &w.to_string(),
            )?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            write(&dir, "blkio.leaf_weight", &w.to_string())?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                let file = weight_file("blkio.weight_device", "blkio.bfq.weight_device");
                write(&dir, file, &format!("{}:{} {w}", d.major(), d.minor()))?;
            }
            if let Some(w) = d.leaf_weight() {
                write(
                    &dir,
                    "blkio.leaf_weight_device",
                    &format!("{}:{} {w}", d.major(), d.minor()),
                )?;
            }
        }
        for (list, file) in [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ] {
            for t in list.iter().flatten() {
                write(
                    &dir,
                    file,
                    &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
        Ok(())
    }

    fn set_misc(&self, r: &LinuxResources) -> Result<()> {
        if let Some(p) = r.pids().as_ref().filter(|p| p.limit() != 0) {
            write(&self.dir("pids")?, "pids.max", &pids_max(p.limit()))?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            let size = h.page_size();
            let value = h.limit().to_string();
            // v1 names first; a hybrid host may carry hugetlb on cgroup2.
            let (dir, max, rsvd) = match self.dir("hugetlb") {
                Ok(dir) => (dir, "limit_in_bytes", "rsvd.limit_in_bytes"),
                Err(e) => (self.unified_with("hugetlb")?.ok_or(e)?, "max", "rsvd.max"),
            };
            write(&dir, &format!("hugetlb.{size}.{max}"), &value)?;
            let rsvd = format!("hugetlb.{size}.{rsvd}");
            if fs::exists(&dir, &rsvd) {
                write(&dir, &rsvd, &value)?;
            }
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                write(&self.dir("net_cls")?, "net_cls.classid", &id.to_string())?;
            }
            for p in n.priorities().iter().flatten() {
                write(
                    &self.dir("net_prio")?,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        for (dev, lim) in r.rdma().iter().flatten() {
            write(&self.dir("rdma")?, "rdma.max", &rdma_line(dev, lim))?;
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::Other(
                "invalid configuration: linux.resources.unified needs a cgroup v2 host (this one is v1 or hybrid)".into(),
            ));
        }
        Ok(())
    }

    /// The hierarchy whose cgroup.procs lists the container's processes.
    fn procs_dir(&self) -> Result<PathBuf> {
        ["pids", "freezer", "devices", "memory", "cpu"]
            .iter()
            .find_map(|c| self.dir(c).ok())
            .or_else(|| self.dirs().into_iter().next())
            .ok_or_else(|| Error::Other("no cgroup hierarchy".into()))
    }
}

pub fn pids_max(limit: i64) -> String {
    if limit <= 0 {
        "max".into()
    } else {
        limit.to_string()
    }
}

pub fn rdma_line(dev: &str, l: &oci_spec::runtime::LinuxRdma) -> String {
    let mut line = dev.to_string();
    if let Some(h) = l.hca_handles() {
        line += &format!(" hca_handle={h}");
    }
    if let Some(o) = l.hca_objects() {
        line += &format!(" hca_object={o}");
    }
    line
}

impl Cgroup for V1 {
    fn create_clone_target(&self) -> Result<()> {
        self.unified_dir().map_or(Ok(()), |d| fs::mkdir_all(&d))
    }

    fn create_rest(&self) -> Result<()> {
        for d in self.v1_dirs() {
            fs::mkdir_all(&d)?;
        }
        self.init_cpuset()
    }

    fn add(&self, pid: i32) -> Result<()> {
        self.placement_dirs().add(pid)
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        self.set_memory(r)?;
        self.set_cpu(r)?;
        self.set_blkio(r)?;
        self.set_misc(r)
    }

    fn set_devices(&self, rules: &[devices::Rule]) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let dir = self.dir("devices")?;
        // One open file per direction: each write(2) is one rule to the kernel.
        let allow = fs::Writer::open(&dir, "devices.allow")?;
        let deny = fs::Writer::open(&dir, "devices.deny")?;
        for r in rules {
            let w = if r.allow { &allow } else { &deny };
            w.write(&r.v1_line())?;
        }
        Ok(())
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        let dir = self.dir("freezer")?;
        let want = if frozen { "FROZEN" } else { "THAWED" };
        write(&dir, "freezer.state", want)?;
        fs::wait_until(&format!("freezer.state {want}"), || {
            fs::read(&dir, "freezer.state").as_deref() == Some(want)
        })
    }

    fn is_frozen(&self) -> bool {
        let v1 = self
            .dir("freezer")
            .ok()
            .and_then(|d| fs::read(&d, "freezer.state"))
            .is_some_and(|s| s == "FROZEN");
        // On a hybrid host init is born in the cgroup2 directory: frozen
        // there, it would be frozen too.
        let v2 = self
            .unified_dir()
            .is_some_and(|d| fs::read_keyed(&d, "cgroup.events").get("frozen") == Some(&1));
        v1 || v2
    }

    fn pids(&self) -> Result<Vec<i32>> {
        Ok(fs::pids(&self.procs_dir()?))
    }

    fn stats(&self) -> serde_json::Value {
        let dir = |c: &str| self.dir(c).ok();
        stats::v1(
            dir("cpuacct"),
            dir("memory"),
            dir("pids"),
            dir("blkio"),
            dir("hugetlb"),
        )
    }

    fn oom_kills(&self) -> u64 {
        self.dir("memory")
            .map(|d| {
                fs::read_keyed(&d, "memory.oom_control")
                    .get("oom_kill")
                    .copied()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for d in self.dirs() {
            if let Err(e) = fs::remove(&d) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn path(&self) -> &Path {
        &self.rel
    }

    fn placement_dirs(&self) -> super::Dirs {
        super::Dirs {
            unified: self.unified_dir(),
            v1: self.v1_dirs(),
        }
    }

    fn below(&self, subs: &super::SubPaths) -> Result<super::Dirs> {
        let known: Vec<&str> = self.layout.v1.keys().map(String::as_str).collect();
        if let Some(c) = super::unknown_controller(subs, &known) {
            return Err(super::unknown(c));
        }
        let all = subs.get("");
        let mut v1 = Vec::new();
        for (mp, controllers) in self.layout.hierarchies() {
            let dir = mp.join(&self.rel);
            let sub = controllers.iter().find_map(|c| subs.get(c)).or(all);
            v1.push(match sub {
                Some(sub) => super::descend(&dir, sub)?,
                None => dir,
            });
        }
        let unified = match (self.unified_dir(), all) {
            (Some(dir), Some(sub)) => Some(super::descend(&dir, sub)?),
            (dir, _) => dir,
        };
        Ok(super::Dirs { unified, v1 })
    }
}
