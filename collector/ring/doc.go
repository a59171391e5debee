// Package ring keeps drover-collector nodes in one cluster and decides which
// node owns each model.
//
// Membership comes from hashicorp/memberlist (SWIM gossip). Ownership is a
// consistent-hash ring over the members that are alive or suspect: every node
// puts VirtualNodes points on a 64-bit circle at xxhash("<node>#<i>"), and a
// model belongs to the first point at or after xxhash(model), wrapping around.
// Every node computes the ring from the same membership, so nodes that see the
// same members agree on every owner without talking about models at all.
//
// Behaviour that callers rely on:
//
//   - A member that is suspect (missed probes, not yet declared dead) keeps
//     its models, so a slow node does not make ownership flap. A member that
//     is dead or has left drops out of the ring at once; Members still lists it,
//     with its state, until memberlist forgets it (one push/pull interval).
//   - A membership change moves only the models of the node that changed
//     (about 1/N of them); the others keep their owner.
//   - Configured Join peers that are not alive members are joined again every
//     RejoinInterval, so a restarted seed, a partition that healed or a node
//     that was isolated all end up in one cluster again.
//   - During a network partition each side builds its ring from the members it
//     can see, so each side has an owner for every model. Whatever the owner
//     does must tolerate that (docs/cluster.md).
//   - Before Run starts and after it returns the ring has no members: Owner
//     reports no owner and Owns is false for every model.
package ring
