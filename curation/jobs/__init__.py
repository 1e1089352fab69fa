"""One lifecycle for every background job: claim, heartbeat, cancel, resume, sweep.

A job is a row (a ``BackgroundJob``) and a Celery task that runs it from its id. The row says where the job
is; the broker only says "go". Workers die (kill -9, out of memory, a machine gone), messages get lost or
delivered twice: the row's status claim makes a second delivery a no-op, the heartbeat shows a dead worker,
and the sweep (Celery beat every 30 s, and at every worker start) puts lost jobs back in the queue until their
kind's attempts run out, then fails them with the reason; it also sends again the message of a queued job that an
idle queue never took (``sent_at``: the broker lost it). GET requests never write: only services and the
sweep change a job.

How to add a kind of job (the logit cache, synthesis, bulk actions...):

1. Model: subclass ``curation.jobs.models.BackgroundJob`` (status, attempts, worker, heartbeat_at,
   cancel_requested, error, created_at, queued_at, sent_at, started_at, finished_at come with it) and add only your
   own fields (inputs, progress, results)::

       class LogitCacheJob(BackgroundJob):
           dataset_version = models.ForeignKey(...)
           done = models.PositiveIntegerField(default=0)

2. Task: ``@shared_task(name="myapp.tasks.logit_cache_run")`` taking the id and calling one service. Route its
   name to a queue in ``settings.CELERY_TASK_ROUTES`` (long work never goes to ``default``, where the sweep runs).

3. Register the kind in your ``AppConfig.ready``::

       from curation.jobs.registry import JobKind, JobPolicy, register
       register(JobKind(name="logit-cache", model=LogitCacheJob, task="myapp.tasks.logit_cache_run",
                        queue="training", resume="rows already cached are skipped",
                        policy=JobPolicy(max_attempts=3)))          # stale threshold <= 60 s

4. Service (the task's body): ``jobs.job_run`` claims (QUEUED -> RUNNING in one UPDATE; a second delivery
   does nothing), beats from a thread every 10 s, and finishes with what your work returns. The work must be
   idempotent and resumable, since any attempt can die anywhere::

       from curation.jobs import services as jobs

       def logit_cache_run(*, job_id: int) -> str | None:
           return jobs.job_run(LogitCacheJob, job_id, _cache)

       def _cache(job: LogitCacheJob) -> str:
           for chunk in work_left(job):                   # "resume": skip what earlier attempts stored
               with transaction.atomic():                 # each piece with its progress, in one short transaction
                   store(chunk)
                   if not jobs.job_beat(LogitCacheJob, job.pk, done=F("done") + len(chunk)):
                       return JobStatus.CANCELLED         # cancel asked for (or the job is no longer ours)
           return JobStatus.SUCCEEDED

   Raise ``jobs.JobFailed(message)`` for a failure you can explain (bad input), and ``jobs.JobLost(reason)`` when
   a child process died (``jobs.lost_reason(popen.returncode)`` names the out-of-memory killer): the job then
   goes back to the queue, or fails with the reason once its attempts are spent. Any other exception fails it
   with its type and message.

5. Doors: create with ``Model.objects.create(...)`` then ``jobs.job_enqueue(job)`` in the same transaction;
   cancel and resume are ``jobs.job_cancel`` / ``jobs.job_resume``; admin: subclass ``curation.jobs.admin.JobAdmin``;
   API: mix ``curation.jobs.api.JobStateSerializer`` into the serializer and add ``JOB_FIELDS``; pages:
   ``{% load jobs %}{% job_state job %}`` (waited time, whether a worker listens, attempts, lost).
"""
