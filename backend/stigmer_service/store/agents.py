"""Reads and writes of agents."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from backend.stigmer_service import ids
from backend.stigmer_service.errors import Aborted, AlreadyExists, NotFound
from backend.stigmer_service.store.base import StoreBase, agent_record, now
from backend.stigmer_service.store.records import AgentRecord, PageCursor
from backend.stigmer_service.store.tables import agents

# Rows read per query while a label-filtered page fills.
_BATCH = 200


class AgentStore(StoreBase):
    async def create_agent(
        self,
        *,
        org: str,
        slug: str,
        name: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        spec: dict[str, Any],
    ) -> AgentRecord:
        at = now()
        values = {
            "id": ids.new_agent_id(),
            "org": org,
            "slug": slug,
            "name": name,
            "labels": labels,
            "annotations": annotations,
            "spec": spec,
            "version": 1,
            "execution_count": 0,
            "created_at": at,
            "updated_at": at,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(agents.insert().values(**values))
        except IntegrityError as error:
            raise AlreadyExists(f"agent {org or '(platform)'}/{slug} already exists") from error
        return await self.get_agent(str(values["id"]))

    async def apply_agent(
        self,
        *,
        org: str,
        slug: str,
        name: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        spec: dict[str, Any],
    ) -> AgentRecord:
        for _ in range(3):
            existing = await self.find_agent(org, slug)
            if existing is None:
                try:
                    return await self.create_agent(
                        org=org,
                        slug=slug,
                        name=name,
                        labels=labels,
                        annotations=annotations,
                        spec=spec,
                    )
                except AlreadyExists:
                    continue  # Created concurrently: update it instead.
            return await self.update_agent(
                existing.id,
                {"name": name, "labels": labels, "annotations": annotations, "spec": spec},
                expected_version=0,
            )
        raise Aborted(f"agent {org}/{slug} changed concurrently; retry")

    async def update_agent(
        self, agent_id: str, fields: dict[str, Any], *, expected_version: int
    ) -> AgentRecord:
        condition = agents.c.id == agent_id
        if expected_version:
            condition = condition & (agents.c.version == expected_version)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                agents.update()
                .where(condition)
                .values(**fields, version=agents.c.version + 1, updated_at=now())
            )
            if result.rowcount == 0:
                exists = await conn.scalar(sa.select(agents.c.id).where(agents.c.id == agent_id))
                if exists is None:
                    raise NotFound(f"agent {agent_id} not found")
                raise Aborted(f"agent {agent_id} was changed since version {expected_version}")
        return await self.get_agent(agent_id)

    async def get_agent(self, agent_id: str) -> AgentRecord:
        async with self.engine.connect() as conn:
            row = (await conn.execute(agents.select().where(agents.c.id == agent_id))).first()
        if row is None:
            raise NotFound(f"agent {agent_id} not found")
        return agent_record(row)

    async def find_agent(self, org: str, slug: str) -> AgentRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    agents.select().where((agents.c.org == org) & (agents.c.slug == slug))
                )
            ).first()
        return None if row is None else agent_record(row)

    async def list_agents(
        self, *, org: str, labels: dict[str, str], after: PageCursor | None, limit: int
    ) -> tuple[list[AgentRecord], bool]:
        """One keyset page of an org's agents, oldest first, after `after`. Labels are matched in
        Python (portable across both databases), reading the org in bounded batches."""
        batch = max(2 * limit, _BATCH)
        matching: list[AgentRecord] = []
        async with self.engine.connect() as conn:
            while len(matching) <= limit:
                query = agents.select().where(agents.c.org == org)
                if after is not None:
                    query = query.where(
                        (agents.c.created_at > after.created_at)
                        | ((agents.c.created_at == after.created_at) & (agents.c.id > after.id))
                    )
                query = query.order_by(agents.c.created_at, agents.c.id).limit(batch)
                rows = (await conn.execute(query)).all()
                for row in rows:
                    if all(row.labels.get(k) == v for k, v in labels.items()):
                        matching.append(agent_record(row))
                if len(rows) < batch:
                    break
                last = agent_record(rows[-1])
                after = PageCursor(last.created_at, last.id)
        return matching[:limit], len(matching) > limit

    async def delete_agent(self, agent_id: str) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(agents.delete().where(agents.c.id == agent_id))
        if result.rowcount == 0:
            raise NotFound(f"agent {agent_id} not found")
