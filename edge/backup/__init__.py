"""Backups of the station's store, off the box: `edge backup` and `edge restore`.

A backup is a consistent copy of the live store made with SQLite's online backup API (the daemon
keeps filling meanwhile), checked with the same full replay as `edge verify --full`, gzipped, and
put on each configured target (a local directory on a USB disk, an SFTP server), where a rotation
keeps the newest of each of the last days and months. Its outcome is kept beside the store, so
the status page, the metrics and `edge status` show a failed or a missing (too old) backup.

names.py: backup file names and the rotation (pure); snapshot.py: copy, check, compress;
targets.py: where copies go; run.py: `edge backup`; restore.py: `edge restore`. The last
outcome is kept by edge/store/backup_state.py, which the status page reads without importing this.
"""
