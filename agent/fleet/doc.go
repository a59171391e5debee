// Package fleet is the agent's side of fleet control (docs/fleet.md,
// "Control channel" and "Agents"): a Client registers with one of the
// collectors it is given (failing over across them), reports the agent's
// inventory, long-polls the desired state of the models whose selector
// matches the agent, and makes the agent follow it:
//
//   - the desired state is persisted in <data_dir>/desired.json and applied
//     at start, before any collector answers, so a restart without a
//     collector serves the same versions;
//   - for each model it names it is the routing (route.Desired through
//     versions.Set.SetDesired), over the model's policy and local pins;
//   - the versions it names that the model directory lacks are downloaded
//     from the registry into a content-addressed cache
//     (<data_dir>/blobs/sha256/<digest>), assembled as <model>/.tmp-<n> and
//     renamed to <model>/<n>, where the watcher, the gate and the swap take
//     over (distribute.go);
//   - versions it downloaded (<data_dir>/downloaded.json) are removed once
//     they are neither desired, previous nor serving; directories it did
//     not download are never removed.
//
// The package does not import the collector: it speaks HTTP and JSON as
// the docs write them.
package fleet
