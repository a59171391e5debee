// Package watch watches the model store of a host and tells the agent, per
// model, which versions exist and which of them are safe to load.
//
// # Layout
//
// The store is <root>/<model>/<version>/, holding model.onnx and optionally
// drover.yaml (see shared/manifest). Under the root and under each model
// directory, entries are classified as follows:
//
//   - <root>/<name>: a model when name is accepted by manifest.ValidName
//     (so it never starts with '.') and it is a directory or a symlink to
//     one. Anything else (files, hidden or temporary directories such as
//     .tmp-iris, names like lost+found) is ignored.
//   - <root>/<model>/<n>: a version when n is a positive integer written
//     canonically (^[1-9][0-9]{0,17}$) and it is a directory or a symlink to
//     one. "0", "01", "+1", "latest", ".tmp-3", "abc", plain files and
//     dangling symlinks are ignored, never reported.
//
// Symlinks are followed, for model and version directories alike: a
// publisher may keep versions elsewhere and link them in, and may retarget a
// link atomically (ln -sfn through a rename). The target's identity is part
// of the version's fingerprint, so a retargeted link is evaluated again and
// reported; watches follow the new target.
//
// # When a version is Ready
//
// A version is Ready only when all of these hold:
//
//   - model.onnx is a non-empty regular file (a symlink to one is accepted);
//   - if drover.yaml exists: it parses, and its model and version are the
//     directory's; otherwise the version is Invalid;
//   - if drover.yaml lists files with their sha256: every listed file is
//     there with that size and checksum (manifest.Verify); otherwise the
//     version is Incomplete and its error names the file and the mismatch;
//   - if there are no checksums (no drover.yaml, or one without files): the
//     version's fingerprint did not change between two looks at least
//     Debounce apart. The store's contract is that versions are published by
//     renaming a finished directory into place; this rule also protects
//     against a directory copied in place, as long as the copy does not
//     stall for longer than Debounce. A version waiting for that second
//     look is Incomplete. Publishers who copy in place should write
//     checksums.
//
// The fingerprint covers the version directory's identity (device, inode)
// and the name, mode, size, modification time, inode and change time of
// each top-level entry and of each file the manifest lists. Evaluations are
// cached by fingerprint: an unchanged version is not hashed again on
// rescans, and any change to a file that matters produces a new
// fingerprint and a new evaluation.
//
// Incomplete versions carry an error wrapping manifest.ErrIncomplete and are
// evaluated again when their directory changes. Invalid ones carry an error
// that says what is wrong (a bad manifest, a manifest naming another model
// or version, a directory that cannot be read); they too are evaluated
// again when the directory changes.
//
// # Watching
//
// The Watcher puts an inotify watch (fsnotify) on the root, on every model
// directory, on every version directory and on the directories holding the
// files a manifest lists below the top level, so that files written into a
// version in place are seen; temporary directories (.tmp-*) are not
// watched: renaming them into place is the event. Watches are added before
// a directory is read, and dropped when it disappears. Events are debounced
// per model: Debounce after the last one (at most 10×Debounce after the
// first), the model is rescanned and reported if its versions changed. A
// full rescan every Rescan catches what events miss: file systems that do
// not deliver them (NFS; DisableNotify), an exhausted inotify watch limit
// (logged once), a notification queue overflow.
//
// # Errors
//
//   - The root missing or unreadable when Run starts: Run returns an error
//     naming the path; the agent should not start on a wrong path. Once
//     running, a root that cannot be listed any more (moved away, made
//     unreadable) is logged once and the last state is kept, so that models
//     already loaded keep serving; the periodic rescan picks it up again
//     when it is back. Model directories removed from a root that still
//     exists are reported removed as usual.
//   - A model directory that cannot be read: logged once per change; the
//     versions last reported for it are reported again as Invalid with the
//     error, and the model is scanned normally when it can be read again.
//   - A removed model directory is reported once with an empty list and
//     dropped from the Snapshot.
package watch
