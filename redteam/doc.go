// Package redteam measures what a hijacked agent could still do under a
// deployment's grants, policies and tier: it plays scripted worst-case
// agents (one that obeys every injected instruction the moment it sees it,
// one that smuggles stolen data inside calls its grant allows, one that
// retries and rephrases after a denial, one that exfiltrates a little at a
// time, and a clean one for the utility ceiling) through the real gateway,
// against simulated tool environments that Warden serves as real MCP
// servers, and reports attack success and lost utility.
//
// It owns the scenario format (packs of simulated servers, their state,
// user tasks with the grants an operator would write for them, injection
// points, attacker goals), the built-in packs, the simulated environments,
// the scripted agents, the runner and the report.
//
// It must never weaken a check to make a number look better, never reach
// anything but loopback, and never change the packages it measures: it
// builds a deployment from the same parts `warden serve` uses
// (internal/setup) and goes through the gateway like any agent, with mTLS
// and a task grant.
package redteam
