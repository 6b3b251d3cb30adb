"""The maintenance cron function on the main (embedded-provider) stack: one run at a time, expired codes
removed, and jobs orphaned by a crash mid-request timed out and refunded."""
import os
import subprocess
import time

from test_accounts import register_and_verify, sql_text



def run_cron(stack, **extra):
    env = dict(stack.app_env(), **extra)
    return subprocess.run([os.path.join(stack.bin_dir, "maintenance-cron")], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_a_second_run_while_one_holds_the_lease_skips_and_succeeds(stack):
    """One run at a time through a lease row in cron_leases (a session lock would not hold through a
    transaction pooler): while another run holds an unexpired lease, a run skips and exits 0; a lease left
    by a run that died (expired) is taken over; a finished run leaves no lease behind."""
    stack.psql("INSERT INTO cron_leases (name, holder, expires_at) VALUES ('maintenance-cron', 'another-run', now() + interval '5 minutes') "
               "ON CONFLICT (name) DO UPDATE SET holder = 'another-run', expires_at = EXCLUDED.expires_at")
    try:
        result = run_cron(stack)
        assert result.returncode == 0, result.stderr
        assert "skipped" in result.stderr
        assert "maintenance:" not in result.stdout
        assert stack.psql("SELECT holder FROM cron_leases WHERE name = 'maintenance-cron'") == "another-run"
        # The other run died a while ago: its lease has expired.
        stack.psql("UPDATE cron_leases SET expires_at = now() - interval '1 second' WHERE name = 'maintenance-cron'")
        result = run_cron(stack)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("maintenance: ")
        assert stack.psql("SELECT count(*) FROM cron_leases WHERE name = 'maintenance-cron'") == "0"
    finally:
        stack.psql("DELETE FROM cron_leases WHERE name = 'maintenance-cron' AND holder = 'another-run'")


def test_codes_long_expired_are_deleted(stack):
    email = f"stale-{os.urandom(4).hex()}@example.test"
    stack.psql(f"INSERT INTO email_codes (email, purpose, code_hmac, expires_at) "
               f"VALUES ({sql_text(email)}, 'verify', 'x', now() - interval '2 days')")
    result = run_cron(stack)
    assert result.returncode == 0, result.stderr
    assert stack.psql(f"SELECT count(*) FROM email_codes WHERE email = {sql_text(email)}") == "0"


def test_sign_ups_never_confirmed_within_a_day_are_deleted_and_free_their_username(stack):
    """An account still unverified a day after sign-up is removed by the cron, so its username is free
    again; a newer pending one and a verified old one stay."""
    tag = os.urandom(4).hex()
    stale, fresh, verified = (f"{kind}-{tag}@example.test" for kind in ("stale", "fresh", "verified"))
    for email, confirmed, age in ((stale, "false", "2 days"), (fresh, "false", "1 hour"), (verified, "true", "2 days")):
        stack.psql(f"INSERT INTO users (email, username, password_hash, verified, created_at) VALUES "
                   f"({sql_text(email)}, {sql_text('n' + tag + email[0])}, 'x', {confirmed}, now() - interval '{age}')")
    result = run_cron(stack)
    assert result.returncode == 0, result.stderr
    remaining = stack.psql(f"SELECT string_agg(email::text, ',' ORDER BY email) FROM users WHERE email LIKE '%-{tag}@example.test'")
    assert remaining.split(",") == sorted([fresh, verified]), remaining


def test_a_job_orphaned_mid_request_is_failed_and_refunded_once(stack, smtp, http):
    email, _password, _csrf = register_and_verify(stack, smtp, http)
    user_id = stack.psql(f"SELECT id FROM users WHERE email = {sql_text(email)}")
    # What a crash between reserving and finishing leaves: a running job holding one unit of quota.
    stack.psql(f"UPDATE users SET quota_used = 1, quota_period_start = date_trunc('day', now()) WHERE id = '{user_id}'")
    job = stack.psql(f"INSERT INTO generations (user_id, task, provider, status, input, cost, quota_period_start, created_at) "
                     f"VALUES ('{user_id}', 'image', 'local', 'running', '{{}}', 1, date_trunc('day', now()), now() - interval '1 hour') "
                     f"RETURNING id").splitlines()[0]
    for _ in range(2):
        assert run_cron(stack).returncode == 0
    assert stack.psql(f"SELECT status, refunded FROM generations WHERE id = '{job}'") == "failed|t"
    assert stack.psql(f"SELECT quota_used FROM users WHERE id = '{user_id}'") == "0"
