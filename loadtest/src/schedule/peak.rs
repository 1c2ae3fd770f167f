//! The national morning-peak profile: a compressed weekday of NHS logins, 07:00–19:00, with the
//! 08:30–09:30 surge and the lunchtime peak. Its top (09:00) is 1.0; a schedule scales it.

/// The national weekday profile, 07:00–19:00, as (hour of day, share of the 09:00 peak). It is
/// piecewise linear between these points: shifts and wards from 07:00, GP surgeries and
/// outpatient clinics logging in from 08:00 (the 08:30–09:30 surge), a mid-morning plateau,
/// re-logins after lunch breaks (the 12:30–13:30 peak), and the afternoon tail.
pub const MORNING_PEAK: &[(f64, f64)] = &[
    (7.0, 0.08),
    (7.5, 0.18),
    (8.0, 0.40),
    (8.5, 0.85),
    (9.0, 1.00),
    (9.5, 0.80),
    (10.0, 0.62),
    (11.0, 0.55),
    (12.0, 0.58),
    (12.5, 0.70),
    (13.0, 0.74),
    (13.5, 0.62),
    (14.0, 0.55),
    (15.0, 0.52),
    (16.0, 0.45),
    (17.0, 0.30),
    (18.0, 0.15),
    (19.0, 0.08),
];

/// The hour the profile starts.
pub(crate) const PEAK_START: f64 = 7.0;
/// The hour it ends.
pub(crate) const PEAK_END: f64 = 19.0;

/// The morning-peak profile's level at `hour` (linear between its points).
pub fn peak_level(hour: f64) -> f64 {
    let first = MORNING_PEAK[0];
    if hour <= first.0 {
        return first.1;
    }
    for pair in MORNING_PEAK.windows(2) {
        let ((h0, l0), (h1, l1)) = (pair[0], pair[1]);
        if hour <= h1 {
            return l0 + (l1 - l0) * (hour - h0) / (h1 - h0);
        }
    }
    MORNING_PEAK[MORNING_PEAK.len() - 1].1
}
