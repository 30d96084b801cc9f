"""The acknowledgement promises more time only where the request's jurisdiction and rights
allow an extension, and then names the last day it may reach (issue 16, item 7): a Brazilian
access request (LGPD Art. 19: 15 days, no extension) is promised none, an EU one up to two
months from receipt. Through the real workflow and mail, in English and Chinese."""

from __future__ import annotations

from datetime import date

from dsr.emails import AcknowledgementContext, render_email
from dsr.models import Language, Right
from tests.conftest import Harness


async def acknowledgement(h: Harness, **fields: str) -> str:
    request = h.request(**fields)
    handle = await h.submit(request)
    mail = await h.mail.wait_for(
        header=("Message-ID", f"<acknowledgement.{request.request_id}@dsr>"), timeout=30)
    await handle.result()
    return " ".join(mail.get_content().split())


async def test_more_time_is_promised_only_where_an_extension_is_allowed(
        harness: Harness) -> None:
    eu = await acknowledgement(harness)
    assert "we may need more time, until" in eu and "at the latest; if so" in eu
    brazil = await acknowledgement(harness, jurisdiction="BR")
    assert "more time" not in brazil and "two months" not in brazil
    assert "at the latest on" in brazil


def test_the_chinese_acknowledgement_names_the_last_day_or_promises_none() -> None:
    context = AcknowledgementContext(request_id="REQ-1", language=Language.ZH,
                                     rights=[Right.ACCESS], due_on=date(2027, 1, 7),
                                     extension_until=date(2027, 3, 8))
    assert "最迟不晚于2027年3月8日" in render_email(context).body
    none = render_email(context.model_copy(update={"extension_until": None})).body
    assert "延长" not in none and "2027年1月7日" in none
