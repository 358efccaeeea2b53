-- 0024: the tenant whose job, schedule or workflow listed each queue
-- (engine/queue-registry.ts): the keys of a tenant other than the default
-- may list at most a quarter of ATS_MAX_QUEUES, so one tenant cannot take
-- every place for good. NULL: listed by the default tenant, or before this.
ALTER TABLE queues ADD COLUMN tenant VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NULL;
