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

/// The settings the keys make, checked together (each key's own value
/// was checked as it was read).
pub fn resolve(k: &Keys) -> Result<(Option<MemoryLimit>, RestartPolicy), String> {
    if k.memory_limit.is_none()
        && (k.memory_cumulative.is_some() || k.memory_check_interval.is_some())
    {
        return Err("memory-cumulative and memory-check-interval need a memory-limit".into());
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
    let tuned =
        k.restart_delay.is_some() || k.restart_delay_max.is_some() || k.restart_jitter.is_some();
    if tuned && !exponential {
        return Err(
            "restart-delay, restart-delay-max and restart-jitter need restart-policy exponential"
                .into(),
        );
    }
    let delay = k.restart_delay.unwrap_or(DEFAULT_RESTART_DELAY);
    let delay_max = k
        .restart_delay_max
        .unwrap_or(DEFAULT_RESTART_DELAY_MAX.max(delay));
    if delay_max < delay {
        return Err(format!(
            "restart-delay-max ({delay_max}) is less than restart-delay ({delay})"
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
    }
}
