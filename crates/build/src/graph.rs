//! Stages as a graph (BuildKit's model): a stage depends on the stages
//! its FROM, `COPY --from` and `RUN --mount=from=` name; only the stages
//! the target needs are built, and stages that do not depend on each
//! other build at the same time, each on a thread of its own (RUN steps
//! run in child processes of the runtime, so threads are fine here).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use crate::parse::Instruction;
use crate::stage::{predefined, Stage};
use crate::subst::words;
use crate::BuildError;

/// One `FROM ...` and the instructions up to the next FROM.
pub(crate) struct StageDef {
    /// The FROM line.
    pub from: Instruction,
    pub body: Vec<Instruction>,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// Earlier stages this one needs.
    pub deps: Vec<usize>,
    /// The stage FROM names, when it names one (its layers are this
    /// one's first).
    pub parent: Option<usize>,
}

/// Which earlier stage (by name or index) `r` names, if any.
fn stage_ref(defs: &[StageDef], r: &str, by_index: bool) -> Option<usize> {
    let l = r.to_ascii_lowercase();
    defs.iter()
        .position(|d| d.name.as_deref() == Some(&l))
        .or_else(|| {
            r.parse::<usize>()
                .ok()
                .filter(|i| by_index && *i < defs.len())
        })
}

/// The stage names a RUN's `--mount=...from=X` options use.
pub(crate) fn mount_froms(ins: &Instruction) -> Vec<String> {
    ins.flags
        .iter()
        .filter(|(k, _)| k == "mount")
        .flat_map(|(_, v)| {
            v.split(',')
                .filter_map(|o| o.strip_prefix("from="))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Splits the instructions after the global ARGs into stages and finds
/// what each needs. `global` is what FROM lines see.
pub(crate) fn stages(
    instructions: Vec<Instruction>,
    global: &BTreeMap<String, String>,
    esc: char,
) -> Vec<StageDef> {
    let mut defs: Vec<StageDef> = Vec::new();
    for ins in instructions {
        if ins.keyword == "FROM" {
            let lookup = |k: &str| global.get(k).cloned().or_else(|| predefined(k));
            let w = words(&ins.args, &lookup, esc).unwrap_or_default();
            let mut deps = Vec::new();
            // FROM names an earlier stage by name only.
            let parent = w.first().and_then(|b| stage_ref(&defs, b, false));
            deps.extend(parent);
            let name = match w.as_slice() {
                [_, a, n] if a.eq_ignore_ascii_case("as") => Some(n.to_ascii_lowercase()),
                _ => None,
            };
            defs.push(StageDef {
                from: ins,
                body: Vec::new(),
                name,
                deps,
                parent,
            });
            continue;
        }
        let mut refs: Vec<String> = mount_froms(&ins);
        if matches!(ins.keyword.as_str(), "COPY" | "ADD") {
            refs.extend(ins.flag("from").map(String::from));
        }
        let found: Vec<usize> = refs
            .iter()
            .filter_map(|r| stage_ref(&defs[..defs.len() - 1], r, true))
            .collect();
        let d = defs.last_mut().expect("the parser puts FROM first");
        for i in found {
            if !d.deps.contains(&i) {
                d.deps.push(i);
            }
        }
        d.body.push(ins);
    }
    defs
}

/// The stages `target` needs, itself included, in file order.
pub(crate) fn needed(defs: &[StageDef], target: usize) -> Vec<usize> {
    let mut need = vec![false; defs.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !need[i] {
            need[i] = true;
            todo.extend(&defs[i].deps);
        }
    }
    (0..defs.len()).filter(|i| need[*i]).collect()
}

/// What the stage threads share.
struct Shared {
    /// Finished stages.
    done: Mutex<Vec<Option<Stage>>>,
    changed: Condvar,
    /// Set when a stage fails (or the user interrupts): the others stop
    /// before their next step.
    abort: AtomicBool,
}

/// Builds stage `index` from the earlier stages, finished; stops early
/// when the flag is set.
pub(crate) type StageFn<'a> =
    dyn Fn(usize, &[Option<Stage>], &AtomicBool) -> Result<Stage, BuildError> + Sync + 'a;

/// Builds stages `order` (each after its deps, independent ones at the
/// same time) with `run`;
/// returns the finished stages or the first error.
pub(crate) fn schedule(
    defs: &[StageDef],
    order: &[usize],
    run: &StageFn<'_>,
) -> Result<Vec<Option<Stage>>, BuildError> {
    let shared = Shared {
        done: Mutex::new(vec![None; defs.len()]),
        changed: Condvar::new(),
        abort: AtomicBool::new(false),
    };
    let errors: Mutex<Vec<(usize, BuildError)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for &i in order {
            let (shared, errors) = (&shared, &errors);
            s.spawn(move || {
                let earlier = {
                    let mut g = shared.done.lock().expect("stage lock");
                    loop {
                        if shared.abort.load(Ordering::SeqCst) {
                            return;
                        }
                        if defs[i].deps.iter().all(|d| g[*d].is_some()) {
                            break;
                        }
                        g = shared.changed.wait(g).expect("stage lock");
                    }
                    // Only earlier stages are visible to this one.
                    let mut v: Vec<Option<Stage>> = g[..i].to_vec();
                    v.resize(defs.len(), None);
                    v
                };
                let r = run(i, &earlier, &shared.abort);
                let mut g = shared.done.lock().expect("stage lock");
                match r {
                    Ok(st) => g[i] = Some(st),
                    Err(e) => {
                        shared.abort.store(true, Ordering::SeqCst);
                        errors.lock().expect("error lock").push((i, e));
                    }
                }
                drop(g);
                shared.changed.notify_all();
            });
        }
    });
    let mut errors = errors.into_inner().expect("error lock");
    // The failure itself, not the stages it stopped.
    errors.sort_by_key(|(i, e)| (matches!(e, BuildError::Stopped), *i));
    if let Some((_, e)) = errors.into_iter().next() {
        return Err(e);
    }
    Ok(shared.done.into_inner().expect("stage lock"))
}
