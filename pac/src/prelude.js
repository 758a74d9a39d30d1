// waypost PAC prelude: the date and time predicates, written in JS because they are defined
// in terms of the JS Date object (spec §2: bug-compatible Netscape semantics). Everything else
// is a native function registered from Rust. `Date` follows the engine's clock and time zone.
var weekdayRange, dateRange, timeRange;

// `Date` also parses the legacy strings browsers' engines accept ("Tue Mar 03 2009", "Mar 03,
// 2009 03:34:01", "Mar 03 2009 GMT"): boa's own parser knows only the ISO, toString and
// toUTCString forms, and a string it cannot parse makes an Invalid Date (NaN everywhere), so
// scripts that build dates from such strings (Chromium's PAC tests install a mock `Date` that
// does) would silently compare against NaN. Everything else goes to the native constructor;
// instances are native Dates, `instanceof Date` and `Date.prototype` are unchanged.
Date = (function (NativeDate) {
  var MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
  var DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

  // Milliseconds since the epoch of a legacy date string, or NaN.
  function legacyParse(text) {
    var tokens = String(text).match(/[A-Za-z]+|\d+:\d+(?::\d+)?|[+-]\d{4}|\d+/g);
    if (!tokens) return NaN;
    var month = -1, nums = [], h = 0, mi = 0, sec = 0, utc = false, offset = 0, pm = -1;
    for (var i = 0; i < tokens.length; i++) {
      var t = tokens[i], lower = t.toLowerCase();
      if (/^[a-z]+$/.test(lower)) {
        if (lower == 'gmt' || lower == 'utc' || lower == 'ut' || lower == 'z') utc = true;
        else if (lower == 'am' || lower == 'pm') pm = lower == 'pm' ? 1 : 0;
        else if (lower.length >= 3 && MONTHS.indexOf(lower.substr(0, 3)) >= 0 && month < 0) month = MONTHS.indexOf(lower.substr(0, 3));
        else if (lower.length >= 3 && DAYS.indexOf(lower.substr(0, 3)) >= 0) continue;
        else return NaN;
      } else if (t.indexOf(':') >= 0) {
        var hms = t.split(':');
        h = +hms[0]; mi = +hms[1]; sec = hms.length > 2 ? +hms[2] : 0;
      } else if (t.charAt(0) == '+' || t.charAt(0) == '-') {
        var v = +t.substr(1);
        offset = (t.charAt(0) == '-' ? -1 : 1) * (Math.floor(v / 100) * 60 + v % 100);
        utc = true;
      } else {
        nums.push(+t);
      }
    }
    var day, year;
    if (month >= 0 && nums.length == 2) {
      if (nums[0] > 31) { year = nums[0]; day = nums[1]; } else { day = nums[0]; year = nums[1]; }
    } else if (month < 0 && nums.length == 3) {
      month = nums[0] - 1; day = nums[1]; year = nums[2];
    } else {
      return NaN;
    }
    if (year < 50) year += 2000; else if (year < 100) year += 1900;
    if (pm == 1 && h < 12) h += 12; else if (pm == 0 && h == 12) h = 0;
    if (month < 0 || month > 11 || day < 1 || day > 31 || h > 24 || mi > 59 || sec > 59) return NaN;
    if (utc) return NativeDate.UTC(year, month, day, h, mi, sec) - offset * 60000;
    return new NativeDate(year, month, day, h, mi, sec).getTime();
  }

  function parse(text) {
    var t = NativeDate.parse(text);
    return isNaN(t) ? legacyParse(text) : t;
  }

  function Date(a) {
    if (!new.target) return NativeDate();
    if (arguments.length == 0) return new NativeDate();
    if (arguments.length == 1 && typeof a == 'string') return new NativeDate(parse(a));
    return Reflect.construct(NativeDate, Array.prototype.slice.call(arguments), new.target);
  }
  Date.prototype = NativeDate.prototype;
  Object.defineProperty(NativeDate.prototype, 'constructor', { value: Date, writable: true, configurable: true });
  Date.parse = parse;
  Date.UTC = NativeDate.UTC;
  Date.now = NativeDate.now;
  return Date;
})(Date);
(function () {
  var DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
  var MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];

  // Splits a trailing "GMT" off an arguments object.
  function split(args) {
    var list = Array.prototype.slice.call(args);
    var gmt = list.length > 0 && list[list.length - 1] == 'GMT';
    if (gmt) list.pop();
    return { list: list, gmt: gmt };
  }

  // A Date whose local fields hold the current UTC wall clock (the Netscape GMT trick).
  function utcAsLocal(now) {
    return new Date(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(),
      now.getUTCHours(), now.getUTCMinutes(), now.getUTCSeconds());
  }

  function within(lo, x, hi) {
    return lo <= hi ? (lo <= x && x <= hi) : (x >= lo || x <= hi);
  }

  weekdayRange = function () {
    var a = split(arguments);
    if (a.list.length < 1) return false;
    var lo = DAYS.indexOf(a.list[0]);
    var hi = a.list.length == 2 ? DAYS.indexOf(a.list[1]) : lo;
    if (lo < 0 || hi < 0) return false;
    var now = new Date();
    return within(lo, a.gmt ? now.getUTCDay() : now.getDay(), hi);
  };

  dateRange = function () {
    var a = split(arguments), n = a.list.length, now = new Date();
    if (n < 1) return false;
    if (n == 1) {
      var v = parseInt(a.list[0], 10);
      if (isNaN(v)) return MONTHS.indexOf(a.list[0]) == (a.gmt ? now.getUTCMonth() : now.getMonth());
      if (v < 32) return v == (a.gmt ? now.getUTCDate() : now.getDate());
      return v == (a.gmt ? now.getUTCFullYear() : now.getFullYear());
    }
    var year = now.getFullYear();
    var from = new Date(year, 0, 1, 0, 0, 0), to = new Date(year, 11, 31, 23, 59, 59);
    var toCurrentMonth = false;
    for (var i = 0; i < n; i++) {
      var d = i < (n >> 1) ? from : to, x = parseInt(a.list[i], 10);
      if (isNaN(x)) d.setMonth(MONTHS.indexOf(a.list[i]));
      else if (x < 32) { toCurrentMonth = n <= 2; d.setDate(x); }
      else d.setFullYear(x);
    }
    if (toCurrentMonth) { from.setMonth(now.getMonth()); to.setMonth(now.getMonth()); }
    if (a.gmt) now = utcAsLocal(now);
    return within(from, now, to);
  };

  timeRange = function () {
    var a = split(arguments), n = a.list.length, now = new Date(), l = a.list;
    if (n < 1) return false;
    var hour = a.gmt ? now.getUTCHours() : now.getHours();
    if (n == 1) return hour == l[0];
    if (n == 2) return l[0] <= hour && hour <= l[1];
    var from = new Date(now.getTime()), to = new Date(now.getTime());
    if (n == 4) { from.setHours(l[0], l[1]); to.setHours(l[2], l[3], 59); }
    else if (n == 6) { from.setHours(l[0], l[1], l[2]); to.setHours(l[3], l[4], l[5]); }
    else throw 'timeRange: bad number of arguments';
    if (a.gmt) now = utcAsLocal(now);
    return within(from, now, to);
  };
})();

// A console object, as V8 (Chromium's PAC engine) and pacparser provide: messages go to the
// same log as alert().
var console = (function () {
  function log() { alert(Array.prototype.join.call(arguments, ' ')); }
  return { log: log, info: log, warn: log, error: log, debug: log };
})();
