/* sftpfs: a directory on an SSH server, served to the guest as a FUSE
 * filesystem (--home ssh://HOST/PATH), over an SFTP session (sftp.h).
 *
 * Confinement, on a server that resolves paths itself: every path sent
 * is the session's resolved root, then names the guest looked up one at
 * a time (no '/', not "." or ".."), each found by LSTAT: a symbolic link
 * is given to the guest as a link (its kernel resolves it in its own
 * tree) and is never a directory umlk looks into, opens, or changes
 * through (SETSTAT on a link only by lsetstat@openssh.com).  The table
 * of paths follows every rename and removal the guest makes, and those
 * that can put a link where a directory was (rename, symlink, link) wait
 * until no request using an older path is in flight: a node whose name
 * went away is stale (ESTALE), never a different file.
 *
 * Nothing is acknowledged to the guest that the server has not, but for
 * writes: a WRITE is answered once it is sent, and its answer read later
 * (up to 8 pieces in flight per file, then the oldest is awaited); an
 * error in one fails the guest's next write, its close (FLUSH) or its
 * fsync, as a local disk's writeback does.  The server answers in order,
 * so every request sent after a write sees it.  Where the guest's answer
 * needs the server's attributes after a change (a create, mkdir, symlink,
 * link, chmod, chown, utimes), the LSTAT goes right behind the change:
 * one round trip for both.  A CLOSE is not waited for.  Reads larger than
 * the server's limits go as several requests at once, and a file the
 * guest reads in order is read ahead of it (eight pieces of the server's
 * read size; dropped at a write to the file or a jump elsewhere; not with
 * --home-cache none).  A lost connection fails what is in flight with
 * EIO (sftp.h); files open then fail with EIO until closed.
 *
 * Lifetimes (--home-cache): 'auto' lets the guest keep names and
 * attributes for SFTPFS_AUTO_SECS, sshfs's own default, not a second as
 * for a local --home DIR: every name of a path is a round trip when it
 * has run out, and over a link of 80 ms a walk down four directories
 * would cost a third of a second at each file.  A change made on the
 * server by others shows in the guest within that time.  A directory the
 * guest makes is known to be empty: for that lifetime a name in it that
 * umlk made nothing for is missing without asking the server (the first
 * lookup of every file an untar makes), until a change there ends in
 * doubt (not with --home-cache none); a node the guest's kernel forgets
 * meanwhile (it drops a directory's after every chmod) is kept for it.
 * A create or mkdir sends the directory's LSTAT behind it, and what it
 * gives answers the guest's next stat of the directory (busybox tar
 * stats each file's directory, and the kernel forgets a directory's
 * attributes after every change in it).
 *
 * Not done: extended attributes, locks (the guest's kernel keeps them),
 * device nodes, FIFOs and sockets (SFTP has no way to make them), hard
 * link counts and inode numbers (SFTP version 3 has none: each name is
 * its own node, its link count 1). */
#ifndef UMLK_SFTPFS_H
#define UMLK_SFTPFS_H

#include "share/fuse.h"
#include "share/sftp.h"

struct sftpfs;

#define SFTPFS_AUTO_SECS 20

/* Serve the root of the session C (taken over), the guest keeping what
 * CACHE allows (as for --home DIR: share/fuse.h). */
struct sftpfs *sftpfs_open(struct sftp *c, enum fshare_cache cache);
void sftpfs_close(struct sftpfs *f);
fuse_serve_fn sftpfs_serve;

#endif
