//! `waypost pac bench`: load time, then per-URL median/p99 latency and throughput with the
//! result cache off (every call runs the script) and on, then throughput with 1..=N
//! concurrent callers to show scaling across workers. Calls cross to `pac-worker` processes,
//! as in the running proxy, unless `--in-process` (worker threads; what a profiler sees best).
//! The timed calls come from a task on the runtime's workers, as a request's do in the proxy.

use std::time::{Duration, Instant};

use super::{read_script, usage, BenchArgs, EXIT_OK, EXIT_SCRIPT};
use crate::{PacEngine, PacOptions};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub(crate) async fn bench(args: BenchArgs) -> i32 {
    let mut options = PacOptions::default();
    if let Some(w) = args.workers {
        options.workers = w.max(1);
    }
    if let Err(e) = args
        .env
        .apply(&mut options)
        .and_then(|()| args.isolation.apply(&mut options))
    {
        return usage(e);
    }
    let text = match read_script(&args.file, options.max_script_bytes).await {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let workers = options.workers;
    let cold = PacOptions {
        workers: 1,
        cache_ttl: Duration::ZERO,
        ..options.clone()
    };
    let started = Instant::now();
    let engine = match PacEngine::new(&text, cold.clone(), None).await {
        Ok(e) => e,
        Err(err) => {
            println!("error: {err}");
            return EXIT_SCRIPT;
        }
    };
    println!(
        "script {} ({} bytes, {}): load {:.1} ms",
        args.file,
        text.len(),
        if args.isolation.in_process {
            "in-process threads"
        } else {
            "worker process"
        },
        started.elapsed().as_secs_f64() * 1e3
    );
    let cached_engine = match PacEngine::new(
        &text,
        PacOptions {
            workers: 1,
            ..options.clone()
        },
        None,
    )
    .await
    {
        Ok(e) => e,
        Err(err) => {
            println!("error: {err}");
            return EXIT_SCRIPT;
        }
    };
    let n = args.iterations.max(1);
    for url in &args.urls {
        let input = match crate::sanitize(url) {
            Ok(i) => i,
            Err(e) => return usage(e),
        };
        // the calls come from a task on the runtime's workers, as a request's do in the proxy
        // (not from the thread blocked in `block_on`, whose every wake-up crosses threads)
        let task_engine = engine.clone();
        let calls = tokio::spawn(async move {
            let mut samples = Vec::with_capacity(n);
            let mut result = Ok(String::new());
            for _ in 0..n {
                let t = Instant::now();
                match task_engine.eval_raw(&input.url, &input.host).await {
                    Ok(a) => result = Ok(a.raw),
                    Err(err) => {
                        result = Err(err);
                        break;
                    }
                }
                samples.push(t.elapsed());
            }
            (samples, result)
        });
        let Ok((mut samples, result)) = calls.await else {
            println!("error: {url}: the benchmark task failed");
            return EXIT_SCRIPT;
        };
        let result = match result {
            Ok(raw) => raw,
            Err(err) => {
                println!("error: {url}: {err}");
                return EXIT_SCRIPT;
            }
        };
        samples.sort();
        let total: Duration = samples.iter().sum();
        println!("url {url} -> {result:?}");
        println!(
            "  uncached: median {:.1} us, p99 {:.1} us, {:.0} evals/s (1 caller)",
            us(percentile(&samples, 0.5)),
            us(percentile(&samples, 0.99)),
            n as f64 / total.as_secs_f64()
        );
        let mut cached = Vec::with_capacity(n);
        let _ = cached_engine.find_proxy(url).await;
        for _ in 0..n {
            let t = Instant::now();
            let _ = cached_engine.find_proxy(url).await;
            cached.push(t.elapsed());
        }
        cached.sort();
        let total: Duration = cached.iter().sum();
        println!(
            "  cached:   median {:.2} us, p99 {:.2} us, {:.0} answers/s",
            us(percentile(&cached, 0.5)),
            us(percentile(&cached, 0.99)),
            n as f64 / total.as_secs_f64()
        );
    }
    let Some(url) = args.urls.first() else {
        return EXIT_OK;
    };
    let Ok(input) = crate::sanitize(url) else {
        return EXIT_OK;
    };
    for w in 1..=workers {
        let pool = match PacEngine::new(
            &text,
            PacOptions {
                workers: w,
                ..cold.clone()
            },
            None,
        )
        .await
        {
            Ok(e) => e,
            Err(_) => return EXIT_SCRIPT,
        };
        let per_caller = n.max(w) / w;
        let t = Instant::now();
        let tasks: Vec<_> = (0..w * 2)
            .map(|_| {
                let (pool, input) = (pool.clone(), input.clone());
                tokio::spawn(async move {
                    for _ in 0..per_caller / 2 {
                        let _ = pool.eval_raw(&input.url, &input.host).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        let done = (per_caller / 2) * w * 2;
        println!(
            "  throughput with {w} worker(s): {:.0} evals/s (uncached)",
            done as f64 / t.elapsed().as_secs_f64()
        );
    }
    EXIT_OK
}
