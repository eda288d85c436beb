"""As test_store_postgresql_follows_promoted_standby, but the primary does
not crash: it stops answering and closes nothing (every process stopped
with SIGSTOP, as a hung host or a network that drops its packets would
look).  Connecting to it never fails, it only never finishes, so roostd
must give each host of the connection string its connect_timeout and go
on to the next: once the standby is promoted, roostd writes there, with
every assignment and pin made before the primary hung."""

import roosttest as rt
import test_store_postgresql_follows_promoted_standby as follows

rt.run(lambda t: follows.main(t, hang=True))
