//! The report as Markdown, section by section.

use std::fmt::Write as _;

use super::Report;

impl Report {
    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        self.heading(&mut md);
        self.correctness(&mut md);
        self.throughput(&mut md);
        self.latency_table(&mut md);
        self.server_section(&mut md);
        self.minutes_table(&mut md);
        let _ = writeln!(
            md,
            "\nMachine: {} × {}, Linux {}.",
            self.machine.cpus, self.machine.cpu_model, self.machine.kernel
        );
        md
    }

    /// Per minute, for runs of two minutes or more: is latency flat once warm, is memory flat?
    fn minutes_table(&self, md: &mut String) {
        if self.minutes.len() < 2 {
            return;
        }
        let _ = writeln!(md, "\n## Per minute\n");
        let _ = writeln!(md, "| minute | requests | p50 ms | p99 ms | p99.9 ms | server RSS MiB |");
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
        for m in &self.minutes {
            let rss = m.server_rss_kib.map_or_else(|| "—".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0));
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {rss} |",
                m.minute, m.requests, m.p50_ms, m.p99_ms, m.p999_ms
            );
        }
    }

    fn heading(&self, md: &mut String) {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(md, "# spinegate-loadtest: {} — {verdict}\n", self.label);
        let _ = writeln!(
            md,
            "{} against `{}` ({} contract), {} users ({}, key pool {}), started {}.\n",
            self.load.schedule,
            self.target,
            self.profile,
            self.population.users,
            self.population.key_kind,
            self.population.key_pool,
            self.started_at
        );
        let l = &self.load;
        let _ = writeln!(
            md,
            "Sessions: login + {}–{} calls, think {:.0} ms (exponential, at most 5× the mean), {:.0}% of later calls on resumed \
             connections; mix `{}`; HTTP `{}`; users `{}`; {} arrivals; warm-up {} s.\n",
            l.calls_min,
            l.calls_max,
            l.think_ms,
            l.resumed_fraction * 100.0,
            l.mix,
            l.http,
            l.users,
            l.arrivals,
            l.warmup_s
        );
    }

    fn correctness(&self, md: &mut String) {
        let s = &self.sessions;
        let _ = writeln!(md, "## Correctness\n");
        let _ = writeln!(
            md,
            "{} sessions dispatched, {} finished, {} dropped, {} unfinished; **{} mismatches**.\n",
            s.dispatched, s.finished, s.dropped, s.unfinished, self.mismatches.total
        );
        let _ = writeln!(md, "| class | must get | sessions | answers judged | mismatched | got |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|---|");
        for (class, t) in &self.classes {
            let got = t.outcomes.iter().map(|(o, n)| format!("{o} ×{n}")).collect::<Vec<_>>().join(", ");
            let _ =
                writeln!(md, "| {class} | {} | {} | {} | {} | {got} |", t.expected, t.sessions, t.judged, t.mismatched);
        }
        if !self.mismatches.by_kind.is_empty() {
            let _ = writeln!(md, "\nMismatches:\n");
            for (kind, n) in self.mismatches.by_kind.iter().take(20) {
                let _ = writeln!(md, "- {kind}: {n}");
            }
        }
        if !self.failures.is_empty() {
            let failures = self.failures.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ");
            let _ = writeln!(md, "\nFailures: {failures}");
        }
    }

    fn throughput(&self, md: &mut String) {
        let m = &self.measured;
        let _ = writeln!(md, "\n## Throughput (measured window {:.1} s)\n", m.seconds);
        let _ =
            writeln!(md, "| sessions/s | requests/s | full handshakes/s | resumed handshakes/s | resumption missed |");
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            md,
            "| {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            m.sessions_per_s,
            m.requests_per_s,
            m.full_handshakes_per_s,
            m.resumed_handshakes_per_s,
            m.counts.resumption_missed
        );
    }

    fn latency_table(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Latency (ms, from the intended time)\n");
        let _ = writeln!(md, "| phase | count | p50 | p90 | p99 | p99.9 | max |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        let lat = &self.latency;
        for (name, summary) in [
            ("full handshake (login)", &lat.handshake),
            ("first request (login)", &lat.first_request),
            ("resumed handshake", &lat.resumed_handshake),
            ("later requests", &lat.later_requests),
            ("all requests", &lat.all_requests),
            ("loader dispatch lag", &lat.dispatch_lag),
        ] {
            let _ = writeln!(
                md,
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                summary.count, summary.p50_ms, summary.p90_ms, summary.p99_ms, summary.p999_ms, summary.max_ms
            );
        }
    }

    fn server_section(&self, md: &mut String) {
        let Some(server) = &self.server else { return };
        let fmt = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into());
        let _ = writeln!(md, "\n## Server (pids {:?})\n", server.pids);
        let _ = writeln!(
            md,
            "{:.2} CPU seconds ({:.2} cores busy); VmRSS {} MiB, VmHWM {} MiB.\n",
            server.cpu_seconds,
            server.cores_busy,
            server.memory.vm_rss_kib / 1024,
            server.memory.vm_hwm_kib / 1024
        );
        let _ = writeln!(md, "| | requests | sessions | full handshakes | resumed handshakes |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        let _ = writeln!(
            md,
            "| per server core-second | {} | {} | {} | {} |",
            fmt(server.requests_per_core_second),
            fmt(server.sessions_per_core_second),
            fmt(server.full_handshakes_per_core_second),
            fmt(server.resumed_handshakes_per_core_second)
        );
    }
}
