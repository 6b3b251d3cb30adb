import SharedKit

#if canImport(Glibc)
import Glibc
#endif

// Run by cron (every 5 minutes under `make run`): new quota periods, premium expiry, and reconciliation
// of subscriptions with Razorpay. A second run while one is working skips.
exit(Renewal.run(Services.start(function: "renew-cron").standaloneContext()))
