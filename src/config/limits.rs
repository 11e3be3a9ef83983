//! Memory limits and restart policies of a `<program>`: the datatypes
//! of their keys (shared by the ZConfig schema and TOML) and their
//! resolved, checked form.

use serde::{Deserialize, Deserializer};

use super::datatypes::{self as dt, Conv};
use crate::pyrepr::repr_str;

/// The memory check's interval when none is given: superlance's memmon
/// runs on supervisord's 60-second tick.
pub const DEFAULT_MEMORY_INTERVAL: i64 = 60;
/// The exponential policy's first delay and cap, in seconds.
pub const DEFAULT_RESTART_DELAY: f64 = 1.0;
pub const DEFAULT_RESTART_DELAY_MAX: f64 = 60.0;
/// The share of each exponential delay taken off at random, so that the
/// nodes of a site that failed together do not restart together.
pub const DEFAULT_RESTART_JITTER: f64 = 0.1;
/// systemd's defaults for a start limit given by only one of its keys.
pub const DEFAULT_START_LIMIT_BURST: i64 = 5;
pub const DEFAULT_START_LIMIT_INTERVAL: i64 = 10;

/// `memory-limit`: a positive byte size (`800MB`).
pub fn memory_limit(s: &str) -> Conv<i64> {
    let v = dt::byte_size(s)?;
    if v <= 0 {
        return Err(format!("memory-limit must be positive: {}", repr_str(s)));
    }
    Ok(v)
}

/// A time interval of at least one second (`30s`, `5m`).
pub fn positive_interval(s: &str) -> Conv<i64> {
    let v = dt::time_interval(s)?;
    if v <= 0 {
        return Err(format!(
            "interval must be at least 1 second: {}",
            repr_str(s)
        ));
    }
    Ok(v)
}

/// A positive count.
pub fn positive_integer(s: &str) -> Conv<i64> {
    let v = dt::integer(s)?;
    if v <= 0 {
        return Err(format!("must be a positive integer: {}", repr_str(s)));
    }
    Ok(v)
}

/// `restart-policy`: `backoff` (zdaemon's) or `exponential`.
pub fn restart_policy(s: &str) -> Conv<String> {
    let v = s.trim().to_ascii_lowercase();
    match v.as_str() {
        "backoff" | "exponential" => Ok(v),
        _ => Err(format!(
            "restart-policy must be 'backoff' or 'exponential', not {}",
            repr_str(s)
        )),
    }
}

/// Seconds, fractions allowed, not negative (`restart-delay`).
pub fn seconds(s: &str) -> Conv<f64> {
    let v = dt::float(s)?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "must be a number of seconds, not negative: {}",
            repr_str(s)
        ));
    }
    Ok(v)
}

/// `restart-jitter`: a fraction from 0 to 1.
pub fn fraction(s: &str) -> Conv<f64> {
    let v = dt::float(s)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("must be between 0 and 1: {}", repr_str(s)));
    }
    Ok(v)
}

/// In TOML, a size or interval is a number or text as ZConfig writes it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(i64),
    Float(f64),
    Text(String),
}

fn raw_with<'de, D: Deserializer<'de>, T>(
    d: D,
    conv: impl Fn(&str) -> Conv<T>,
) -> Result<Option<T>, D::Error> {
    let text = match Raw::deserialize(d)? {
        Raw::Int(n) => n.to_string(),
        Raw::Float(f) => f.to_string(),
        Raw::Text(s) => s,
    };
    conv(&text).map(Some).map_err(serde::de::Error::custom)
}

pub fn toml_memory_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    raw_with(d, memory_limit)
}

pub fn toml_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    raw_with(d, positive_interval)
}

pub fn toml_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    raw_with(d, positive_integer)
}

pub fn toml_policy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    raw_with(d, restart_policy)
}

pub fn toml_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    raw_with(d, seconds)
}

pub fn toml_fraction<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    raw_with(d, fraction)
}

/// A node's memory limit, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryLimit {
    pub bytes: u64,
    /// Sum the resident memory of the program's descendants too.
    pub cumulative: bool,
    pub interval_secs: u64,
}

/// How a node is restarted after its program ended on its own.
#[derive(Clone, Debug, PartialEq)]
pub struct RestartPolicy {
    /// False: zdaemon's backoff (`backoff-limit`, `forever`).
    pub exponential: bool,
    pub delay: f64,
    pub delay_max: f64,
    pub jitter: f64,
    /// More than `burst` starts within `interval` seconds: give up.
    pub start_limit: Option<(u32, u64)>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            exponential: false,
            delay: DEFAULT_RESTART_DELAY,
            delay_max: DEFAULT_RESTART_DELAY_MAX,
            jitter: DEFAULT_RESTART_JITTER,
            start_limit: None,
        }
    }
}

impl RestartPolicy {
    pub fn name(&self) -> &'static str {
        if self.exponential {
            "exponential"
        } else {
            "backoff"
        }
    }
}

/// The keys of a `<program>` this module reads, as loaded.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    pub memory_limit: Option<i64>,
    pub memory_cumulative: Option<bool>,
    pub memory_check_interval: Option<i64>,
    pub restart_policy: Option<String>,
    pub restart_delay: Option<f64>,
    pub restart_delay_max: Option<f64>,
    pub restart_jitter: Option<f64>,
    pub start_limit_burst: Option<i64>,
    pub start_limit_interval: Option<i64>,
}

/// The keys of a `<program>`.
pub fn keys_of(p: &super::Program) -> Keys {
    Keys {
        memory_limit: p.memory_limit,
        memory_cumulative: p.memory_cumulative,
        memory_check_interval: p.memory_check_interval,
        restart_policy: p.restart_policy.clone(),
        restart_delay: p.restart_delay,
        restart_delay_max: p.restart_delay_max,
        restart_jitter: p.restart_jitter,
        start_limit_burst: p.start_limit_burst,
        start_limit_interval: p.start_limit_interval,
    }
}

/// The keys of a `<runner>` (defaults for a site's programs).
pub fn runner_keys(r: &super::Runner) -> Keys {
    Keys {
        memory_limit: r.memory_limit,
        memory_cumulative: r.memory_cumulative,
        memory_check_interval: r.memory_check_interval,
        restart_policy: r.restart_policy.clone(),
        restart_delay: r.restart_delay,
        restart_delay_max: r.restart_delay_max,
        restart_jitter: r.restart_jitter,
        start_limit_burst: r.start_limit_burst,
        start_limit_interval: r.start_limit_interval,
    }
}

impl Keys {
    /// Each key of `self`, else that of `defaults`; the defaults' keys
    /// that tune a policy or a limit only where the result has it (a
    /// program that says `restart-policy backoff` under a runner that
    /// tunes an exponential one is not an error).
    pub fn or(self, defaults: Keys) -> Keys {
        let exponential = self
            .restart_policy
            .as_deref()
            .or(defaults.restart_policy.as_deref())
            == Some("exponential");
        let limited = self.memory_limit.or(defaults.memory_limit).is_some();
        let defaults = Keys {
            memory_cumulative: defaults.memory_cumulative.filter(|_| limited),
            memory_check_interval: defaults.memory_check_interval.filter(|_| limited),
            restart_delay: defaults.restart_delay.filter(|_| exponential),
            restart_delay_max: defaults.restart_delay_max.filter(|_| exponential),
            restart_jitter: defaults.restart_jitter.filter(|_| exponential),
            ..defaults
        };
        Keys {
            memory_limit: self.memory_limit.or(defaults.memory_limit),
            memory_cumulative: self.memory_cumulative.or(defaults.memory_cumulative),
            memory_check_interval: self
                .memory_check_interval
                .or(defaults.memory_check_interval),
            restart_policy: self.restart_policy.or(defaults.restart_policy),
            restart_delay: self.restart_delay.or(defaults.restart_delay),
            restart_delay_max: self.restart_delay_max.or(defaults.restart_delay_max),
            restart_jitter: self.restart_jitter.or(defaults.restart_jitter),
            start_limit_burst: self.start_limit_burst.or(defaults.start_limit_burst),
            start_limit_interval: self.start_limit_interval.or(defaults.start_limit_interval),
        }
    }
}

/// The keys as `show` writes a runner's: only those given.
pub struct ShownKeys(pub Keys);

impl serde::Serialize for ShownKeys {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let k = &self.0;
        let mut m = s.serialize_map(None)?;
        if let Some(v) = k.memory_limit {
            m.serialize_entry("memory-limit", &v)?;
        }
        if let Some(v) = k.memory_cumulative {
            m.serialize_entry("memory-cumulative", &v)?;
        }
        if let Some(v) = k.memory_check_interval {
            m.serialize_entry("memory-check-interval", &v)?;
        }
        if let Some(v) = &k.restart_policy {
            m.serialize_entry("restart-policy", v)?;
        }
        if let Some(v) = k.restart_delay {
            m.serialize_entry("restart-delay", &v)?;
        }
        if let Some(v) = k.restart_delay_max {
            m.serialize_entry("restart-delay-max", &v)?;
        }
        if let Some(v) = k.restart_jitter {
            m.serialize_entry("restart-jitter", &v)?;
        }
        if let Some(v) = k.start_limit_burst {
            m.serialize_entry("start-limit-burst", &v)?;
        }
        if let Some(v) = k.start_limit_interval {
            m.serialize_entry("start-limit-interval", &v)?;
        }
        m.end()
    }
}

/// A problem with keys taken together: the key to fix and why.
pub type Problem = (&'static str, String);

/// The settings the keys make, checked together (each key's own value
/// was checked as it was read).
pub fn resolve(k: &Keys) -> Result<(Option<MemoryLimit>, RestartPolicy), Problem> {
    if k.memory_limit.is_none() {
        for (key, given) in [
            ("memory-cumulative", k.memory_cumulative.is_some()),
            ("memory-check-interval", k.memory_check_interval.is_some()),
        ] {
            if given {
                return Err((key, format!("{key} needs a memory-limit")));
            }
        }
    }
    let memory = k.memory_limit.map(|b| MemoryLimit {
        bytes: b.max(1) as u64,
        cumulative: k.memory_cumulative.unwrap_or(false),
        interval_secs: k
            .memory_check_interval
            .unwrap_or(DEFAULT_MEMORY_INTERVAL)
            .max(1) as u64,
    });
    let exponential = k.restart_policy.as_deref() == Some("exponential");
    if !exponential {
        for (key, given) in [
            ("restart-delay", k.restart_delay.is_some()),
            ("restart-delay-max", k.restart_delay_max.is_some()),
            ("restart-jitter", k.restart_jitter.is_some()),
        ] {
            if given {
                return Err((key, format!("{key} needs restart-policy exponential")));
            }
        }
    }
    let delay = k.restart_delay.unwrap_or(DEFAULT_RESTART_DELAY);
    let delay_max = k
        .restart_delay_max
        .unwrap_or(DEFAULT_RESTART_DELAY_MAX.max(delay));
    if delay_max < delay {
        return Err((
            "restart-delay-max",
            format!("restart-delay-max ({delay_max}) is less than restart-delay ({delay})"),
        ));
    }
    let start_limit =
        (k.start_limit_burst.is_some() || k.start_limit_interval.is_some()).then(|| {
            (
                k.start_limit_burst
                    .unwrap_or(DEFAULT_START_LIMIT_BURST)
                    .clamp(1, u32::MAX as i64) as u32,
                k.start_limit_interval
                    .unwrap_or(DEFAULT_START_LIMIT_INTERVAL)
                    .max(1) as u64,
            )
        });
    Ok((
        memory,
        RestartPolicy {
            exponential,
            delay,
            delay_max,
            jitter: k.restart_jitter.unwrap_or(DEFAULT_RESTART_JITTER),
            start_limit,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_choices() {
        assert_eq!(memory_limit("800MB"), Ok(800 << 20));
        assert!(memory_limit("0").is_err());
        assert!(restart_policy("linear").is_err());
        assert_eq!(restart_policy("Exponential").as_deref(), Ok("exponential"));
        assert!(fraction("1.5").is_err());
        assert!(seconds("-1").is_err());
        assert_eq!(positive_interval("2m"), Ok(120));
    }

    #[test]
    fn checked_together() {
        let k = Keys {
            memory_cumulative: Some(true),
            ..Keys::default()
        };
        assert_eq!(resolve(&k).err().map(|e| e.0), Some("memory-cumulative"));
        let k = Keys {
            restart_delay: Some(5.0),
            ..Keys::default()
        };
        assert!(resolve(&k).is_err());
        let k = Keys {
            restart_policy: Some("exponential".into()),
            restart_delay: Some(5.0),
            restart_delay_max: Some(2.0),
            ..Keys::default()
        };
        assert!(resolve(&k).is_err());
        let k = Keys {
            start_limit_burst: Some(3),
            ..Keys::default()
        };
        assert_eq!(resolve(&k).map(|r| r.1.start_limit), Ok(Some((3, 10))));
        let program = Keys {
            restart_delay: Some(0.5),
            ..Keys::default()
        };
        let runner = Keys {
            restart_policy: Some("exponential".into()),
            restart_delay: Some(2.0),
            ..Keys::default()
        };
        let both = program.or(runner);
        assert_eq!(both.restart_delay, Some(0.5));
        assert_eq!(both.restart_policy.as_deref(), Some("exponential"));
        let backoff = Keys {
            restart_policy: Some("backoff".into()),
            ..Keys::default()
        };
        let runner = Keys {
            restart_policy: Some("exponential".into()),
            restart_delay: Some(2.0),
            ..Keys::default()
        };
        assert!(resolve(&backoff.or(runner)).is_ok());
    }
}
