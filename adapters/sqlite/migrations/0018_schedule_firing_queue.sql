-- 0018: the queue a schedule's due ticks submit their jobs into, set before
-- the first of them is submitted and cleared when the schedule moves on
-- (engine/schedules.ts). A change of the job template's queue in between, or
-- a crash, then finds those ticks' jobs under their keys instead of
-- submitting them again into the new queue.
ALTER TABLE schedules ADD COLUMN firing_queue TEXT;
