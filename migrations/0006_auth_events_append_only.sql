-- The audit log is append-only: no statement may change a recorded event (housekeeping deletes
-- rows past AUDIT_RETENTION, which is the only other write). drizzle-kit cannot express a
-- trigger, hence this hand-written migration.
CREATE FUNCTION auth_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'auth_events is append-only';
END;
$$;--> statement-breakpoint
CREATE TRIGGER auth_events_no_update BEFORE UPDATE ON auth_events FOR EACH ROW EXECUTE FUNCTION auth_events_append_only();
