"""The TI API's bulk uploads (all or nothing, several megabytes), quotas (507) and tenant isolation."""

from __future__ import annotations

import aiohttp

from importer.emulator import DEMO_CLIENT, ClientApp, Emulator, EmulatorConfig, running_emulator
from tests.helpers import DEFINITION, create_definition, get_json, get_token, post_json, sha1, ti_ioc


async def test_bulk_upload_is_all_or_nothing(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    ti = emulator.ti_url
    status, body = await post_json(
        session,
        ti + "AlertDefinitions/Actions.BulkUpload",
        ti_token,
        {"alertDefinitions": [DEFINITION, {**DEFINITION, "Name": "b"}]},
    )
    assert status == 200 and [d["Name"] for d in body["value"]] == ["feed-a", "b"]
    definition_id = body["value"][0]["Id"]
    status, body = await post_json(
        session,
        ti + "AlertDefinitions/Actions.BulkUpload",
        ti_token,
        {"alertDefinitions": [DEFINITION, {**DEFINITION, "Severity": "Nope"}]},
    )
    assert status == 400 and "alertDefinitions[1]" in body["error"]["message"]
    iocs = [ti_ioc(definition_id, sha1(n)) for n in range(10)]
    bad = [*iocs[:5], ti_ioc(definition_id, "xyz"), *iocs[5:]]
    status, body = await post_json(
        session, ti + "IndicatorsOfCompromise/Actions.BulkUpload", ti_token, {"iocs": bad}
    )
    assert status == 400 and "iocs[5]" in body["error"]["message"]
    assert emulator.state()["totals"]["iocs"] == 0
    status, body = await post_json(
        session,
        ti + "IndicatorsOfCompromise/Actions.BulkUpload",
        ti_token,
        {"iocs": [ti_ioc(definition_id, sha1(1))] * 5001},
    )
    assert status == 400 and emulator.state()["totals"]["iocs"] == 0
    status, body = await post_json(
        session, ti + "IndicatorsOfCompromise/Actions.BulkUpload", ti_token, {"iocs": iocs}
    )
    assert status == 200 and len(body["value"]) == 10 and emulator.state()["totals"]["iocs"] == 10


async def test_a_full_bulk_upload_of_several_megabytes_is_accepted(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    definition_id = await create_definition(session, emulator, ti_token)
    iocs = [{**ti_ioc(definition_id, f"{n:064x}", Type="Sha256"), "ExpiresAt": None} for n in range(5000)]
    assert len(str(iocs)) > 1024 * 1024  # beyond aiohttp's default limit of a request body
    status, body = await post_json(
        session, emulator.ti_url + "IndicatorsOfCompromise/Actions.BulkUpload", ti_token, {"iocs": iocs}
    )
    assert status == 200 and len(body["value"]) == 5000


async def test_quotas_answer_507(session: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(max_alert_definitions=2, max_iocs=5, max_non_equals_iocs=1)
    async with running_emulator(config) as emu:
        token = await get_token(session, emu)
        ti = emu.ti_url
        status, body = await post_json(
            session, ti + "AlertDefinitions/Actions.BulkUpload", token, {"alertDefinitions": [DEFINITION] * 3}
        )
        assert status == 507 and body["error"]["code"] == "InsufficientStorage"
        definition_id = await create_definition(session, emu, token)
        await create_definition(session, emu, token, Name="two")
        assert (await post_json(session, ti + "AlertDefinitions", token, DEFINITION))[0] == 507
        status, _ = await post_json(
            session,
            ti + "IndicatorsOfCompromise/Actions.BulkUpload",
            token,
            {"iocs": [ti_ioc(definition_id, sha1(n)) for n in range(6)]},
        )
        assert status == 507 and emu.state()["totals"]["iocs"] == 0  # atomic: nothing stored
        contains = {**ti_ioc(definition_id, "abc"), "DetectionFunction": "Contains"}
        assert (await post_json(session, ti + "IndicatorsOfCompromise", token, contains))[0] == 201
        assert (await post_json(session, ti + "IndicatorsOfCompromise", token, contains))[0] == 507
        for n in range(4):
            assert (
                await post_json(session, ti + "IndicatorsOfCompromise", token, ti_ioc(definition_id, sha1(n)))
            )[0] == 201
        status, body = await post_json(
            session, ti + "IndicatorsOfCompromise", token, ti_ioc(definition_id, sha1(9))
        )
        assert status == 507 and "quota" in body["error"]["message"]


async def test_tenants_are_isolated(session: aiohttp.ClientSession) -> None:
    other = ClientApp("other-app", "other-secret", "fabrikam")
    async with running_emulator(EmulatorConfig(clients=(DEMO_CLIENT, other))) as emu:
        demo_token = await get_token(session, emu)
        other_token = await get_token(
            session, emu, client_id="other-app", secret="other-secret", tenant="fabrikam"
        )
        definition_id = await create_definition(session, emu, demo_token)
        status, body = await get_json(session, emu.ti_url + "AlertDefinitions", other_token)
        assert status == 200 and body["value"] == []
        assert (await get_json(session, emu.ti_url + f"AlertDefinitions({definition_id})", other_token))[
            0
        ] == 404
        status, _ = await post_json(
            session, emu.ti_url + "IndicatorsOfCompromise", other_token, ti_ioc(definition_id, sha1(1))
        )
        assert status == 400  # the bind names a definition of another tenant
        assert set(emu.state()["tenants"]) == {"contoso-demo", "fabrikam"}
