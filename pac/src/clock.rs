//! The time a script sees: a boa `Clock` (real or fixed) and `HostHooks` that give `Date` the
//! configured IANA time zone through jiff. weekdayRange/dateRange/timeRange read `Date`, so
//! they follow the same clock and zone.

use boa_engine::context::time::{Clock, JsInstant, StdClock};
use boa_engine::context::HostHooks;

/// A wall clock for the script: real time, or a fixed instant (`--now`).
pub(crate) struct ScriptClock {
    std: StdClock,
    fixed_ms: Option<i64>,
}

impl ScriptClock {
    pub fn new(fixed_ms: Option<i64>) -> ScriptClock {
        ScriptClock {
            std: StdClock::new(),
            fixed_ms,
        }
    }
}

impl Clock for ScriptClock {
    fn now(&self) -> JsInstant {
        self.std.now()
    }

    fn system_time_millis(&self) -> i64 {
        self.fixed_ms
            .unwrap_or_else(|| self.std.system_time_millis())
    }
}

/// Host hooks whose only change is the local time zone.
pub(crate) struct ZoneHooks {
    zone: jiff::tz::TimeZone,
}

impl ZoneHooks {
    /// `None` means the system zone (`TZ`, then `/etc/localtime`, else UTC).
    pub fn new(zone: Option<&str>) -> Result<ZoneHooks, String> {
        let zone = match zone {
            Some(name) => jiff::tz::TimeZone::get(name)
                .map_err(|e| format!("unknown time zone {name:?}: {e}"))?,
            None => jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC),
        };
        Ok(ZoneHooks { zone })
    }
}

impl HostHooks for ZoneHooks {
    fn local_timezone_offset_seconds(&self, unix_time_seconds: i64) -> i32 {
        jiff::Timestamp::from_second(unix_time_seconds)
            .map(|ts| self.zone.to_offset(ts).seconds())
            .unwrap_or(0)
    }
}

/// Validates a zone name (for the CLI and engine construction).
pub fn check_time_zone(name: &str) -> Result<(), String> {
    ZoneHooks::new(Some(name)).map(|_| ())
}
