"""One lifecycle for every background job: claim, heartbeat, cancel, resume, sweep.

A job is a row (a ``BackgroundJob``) and a Celery task that runs it from its id. The row says where the job
is; the broker only says "go". Workers die (kill -9, out of memory, a machine gone), messages get lost or
delivered twice: the row's status claim makes a second delivery a no-op, the heartbeat shows a dead worker,
and the sweep (Celery beat every 30 s, and at every worker start) puts lost jobs back in the queue until their
kind's attempts run out, then fails them with the reason. GET requests never write: only services and the
sweep change a job.

How to add a kind of job (the logit cache, synthesis, bulk actions...):

1. Model: subclass ``curation.jobs.models.BackgroundJob`` (status, attempts, worker, heartbeat_at,
   cancel_requested, error, created_at, queued_at, started_at, finished_at come with it) and add only your
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

4. Service (the task's body), idempotent and resumable, since any attempt can die anywhere::

       from curation.jobs import services as jobs

       def logit_cache_run(*, job_id: int) -> str | None:
           if not jobs.job_claim(LogitCacheJob, job_id):       # QUEUED -> RUNNING in one UPDATE
               return None                                     # already taken, cancelled, or finished
           job = LogitCacheJob.objects.get(pk=job_id)
           try:
               with jobs.job_heartbeat(LogitCacheJob, job_id):  # a beat every 10 s from a thread
                   for chunk in work_left(job):                 # "resume": skip what earlier attempts stored
                       store(chunk)                             # each piece in its own short transaction
                       if not jobs.job_beat(LogitCacheJob, job_id, done=F("done") + len(chunk)):
                           return jobs.job_finish(LogitCacheJob, job_id, status="cancelled") and "cancelled"
           except Exception as exc:
               jobs.job_finish(LogitCacheJob, job_id, status="failed", error=str(exc))
               raise
           jobs.job_finish(LogitCacheJob, job_id, status="succeeded")

   A child process that died (``Popen.returncode < 0``) is not a failure of the job: call
   ``jobs.job_release(job=job, reason=jobs.lost_reason(code))`` and the job is queued again, or failed with the
   reason (OOM named) once its attempts are spent. Creating a job: ``Model.objects.create(...)`` then
   ``jobs.job_enqueue(job)`` in the same transaction; cancel and resume are ``jobs.job_cancel`` /
   ``jobs.job_resume``; pages show ``curation.jobs.selectors.queue_state(job)``.
"""
