//! linux.resources checked before anything is written, so that a bad value
//! fails `create` or `update` with one line and changes nothing.

use oci_spec::runtime::LinuxResources;

fn at_least(field: &str, v: i64, min: i64) -> Result<(), String> {
    if v < min {
        return Err(format!("linux.resources.{field} {v} is below {min}"));
    }
    Ok(())
}

fn cpu_list(field: &str, v: &str) -> Result<(), String> {
    let ok = !v.trim().is_empty()
        && v.split(',').all(|part| {
            let mut ends = part.trim().splitn(2, '-');
            let num = |s: Option<&str>| {
                s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            };
            let first = ends.next();
            let second = ends.next();
            num(first) && (second.is_none() || num(second))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "linux.resources.{field} {v:?} is not a list like \"0-3,5\""
        ))
    }
}

pub fn resources(r: &LinuxResources) -> Result<(), String> {
    if let Some(m) = r.memory() {
        for (field, v) in [
            ("memory.limit", m.limit()),
            ("memory.reservation", m.reservation()),
            ("memory.swap", m.swap()),
        ] {
            if let Some(v) = v {
                at_least(field, v, -1)?;
            }
        }
        if let Some(s) = m.swappiness().filter(|s| *s > 100) {
            return Err(format!(
                "linux.resources.memory.swappiness {s} is above 100"
            ));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(q) = c.quota() {
            at_least("cpu.quota", q, -1)?;
        }
        if let Some(p) = c
            .period()
            .filter(|p| *p != 0 && !(1000..=1_000_000).contains(p))
        {
            return Err(format!(
                "linux.resources.cpu.period {p} is outside 1000..1000000 microseconds"
            ));
        }
        if let Some(s) = c.shares().filter(|s| *s == 1 || *s > 262_144) {
            return Err(format!(
                "linux.resources.cpu.shares {s} is outside 2..262144"
            ));
        }
        if let Some(cpus) = c.cpus() {
            cpu_list("cpu.cpus", cpus)?;
        }
        if let Some(mems) = c.mems() {
            cpu_list("cpu.mems", mems)?;
        }
    }
    if let Some(p) = r.pids() {
        at_least("pids.limit", p.limit(), -1)?;
    }
    if let Some(b) = r.block_io() {
        let weights = b.weight().into_iter().chain(b.leaf_weight()).chain(
            b.weight_device()
                .iter()
                .flatten()
                .flat_map(|d| d.weight().into_iter().chain(d.leaf_weight())),
        );
        for w in weights {
            if w != 0 && !(10..=1000).contains(&w) {
                return Err(format!(
                    "linux.resources.blockIO weight {w} is outside 10..1000"
                ));
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        let size = h.page_size();
        let ok = size.len() > 2
            && (size.ends_with("KB") || size.ends_with("MB") || size.ends_with("GB"))
            && size[..size.len() - 2].bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(format!(
                "linux.resources.hugepageLimits pageSize {size:?} is not like \"2MB\""
            ));
        }
    }
    for d in r.devices().iter().flatten() {
        super::devices::Rule::from_spec(d).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<(), String> {
        resources(&serde_json::from_str(json).expect("resources parse"))
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        assert!(check(r#"{"memory":{"limit":-5}}"#)
            .unwrap_err()
            .contains("memory.limit"));
        assert!(check(r#"{"cpu":{"period":10}}"#)
            .unwrap_err()
            .contains("cpu.period"));
        assert!(check(r#"{"cpu":{"cpus":"0-x"}}"#)
            .unwrap_err()
            .contains("cpu.cpus"));
        assert!(check(r#"{"pids":{"limit":-2}}"#)
            .unwrap_err()
            .contains("pids.limit"));
        assert!(check(r#"{"blockIO":{"weight":5}}"#)
            .unwrap_err()
            .contains("weight 5"));
        assert!(check(r#"{"devices":[{"allow":true,"access":"xyz"}]}"#)
            .unwrap_err()
            .contains("xyz"));
        // runc drops letters other than r, w and m.
        assert!(check(r#"{"devices":[{"allow":true,"access":"rwz"}]}"#).is_ok());
        assert!(check(r#"{"hugepageLimits":[{"pageSize":"2M","limit":1}]}"#).is_err());
        assert!(check(
            r#"{"memory":{"limit":-1},"cpu":{"cpus":"0-1,3","period":100000},"pids":{"limit":0}}"#
        )
        .is_ok());
    }
}
