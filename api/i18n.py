"""The console's translation catalogue (``api/console/i18n/{en,zh-CN}.json``): error codes, command states,
interlocks, quality words and reasons, device states, every catalogue point and unit, profile titles and the rule
packs' alert titles (each rule's ``title`` and ``title_zh``), in English and Chinese. The JSON files are written from
these tables (``python -m api.i18n``); ``tests/unit/test_i18n.py`` fails when anything the API or the catalogue can
show lacks an entry, or when a file is not what this module writes."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from api._gate_checks import REASON_CODES as API_REASON_CODES
from api.deps import STATUS_CODES
from api.password_policy import RULE_CODES
from device_profiles import Profile, load_catalogue
from device_profiles.derive import CALIBRATION, MAINTENANCE
from rules import PACKS, Rule, load_rules
from telemetry.commands import Interlock
from telemetry.interlocks import REASON_CODES as INTERLOCK_REASON_CODES

LANGUAGES = ("en", "zh-CN")
FOLDER = Path(__file__).parent / "console" / "i18n"
T = tuple[str, str]  # (English, Chinese)

# -- errors: code -> message with {param} placeholders ---------------------------------------------------------------
ERRORS: dict[str, T] = {
    "request.bad": ("The request is not valid.", "请求无效。"),
    "request.not_found": ("Not found.", "未找到。"),
    "request.method": ("This method is not allowed here.", "此处不允许该操作方法。"),
    "request.conflict": ("The request conflicts with the current state.", "请求与当前状态冲突。"),
    "request.too_large": ("The request is larger than {limit_bytes} bytes.", "请求超过 {limit_bytes} 字节。"),
    "request.media_type": ("Unsupported content type.", "不支持的内容类型。"),
    "request.invalid": ("The request is not valid.", "请求内容不符合要求。"),
    "request.too_many": ("Too many requests: try again later.", "请求过多，请稍后再试。"),
    "request.failed": ("The request failed.", "请求失败。"),
    "server.error": ("The server failed.", "服务器出错。"),
    "service.unavailable": ("A service is not reachable.", "服务暂不可用。"),
    "influxdb.unreachable": ("The history database is not reachable.", "历史数据库无法连接。"),
    "influxdb.refused": ("The history database refused the query.", "历史数据库拒绝了查询。"),
    "auth.required": ("Log in first.", "请先登录。"),
    "auth.forbidden": ("You may not do this.", "您无权执行此操作。"),
    "auth.token_required": ("Log in first.", "请先登录。"),
    "auth.token_invalid": (
        "Your session has ended (expired, revoked or idle too long): log in again.",
        "会话已失效（过期、被撤销或空闲过久），请重新登录。",
    ),
    "auth.must_change_password": (
        "Change your one-time password first.",
        "请先修改一次性密码。",
    ),
    "auth.role_forbidden": (
        "Role {role} may not do this ({permission}).",
        "角色 {role} 无权执行此操作（{permission}）。",
    ),
    "auth.site_outside_areas": ("Site {site} is outside your areas.", "站点 {site} 不在您的管辖区域内。"),
    "auth.area_outside_areas": ("Area {area} is outside your areas.", "区域 {area} 不在您的管辖范围内。"),
    "auth.wrong_credentials": ("Wrong user name or password.", "用户名或密码错误。"),
    "auth.throttled": (
        "Too many failed logins from your address: try again in {wait_s} s.",
        "您的地址登录失败次数过多，请 {wait_s} 秒后再试。",
    ),
    "auth.throttled_user": (
        "Too many failed logins for this user from your address: try again in {wait_s} s.",
        "该用户从您的地址登录失败次数过多，请 {wait_s} 秒后再试。",
    ),
    "password.too_short": ("A password needs at least {min} characters.", "密码至少需要 {min} 个字符。"),
    "password.too_long": ("A password may have at most {max} characters.", "密码最多 {max} 个字符。"),
    "password.user_name": ("The password must not be the user name.", "密码不能与用户名相同。"),
    "password.few_distinct": (
        "A password needs at least {min} different characters.",
        "密码至少需要 {min} 个不同的字符。",
    ),
    "password.common": (
        "This is a commonly used password (or a simple variation of one): choose another.",
        "这是常用密码（或其简单变形），请另选一个。",
    ),
    "password.run": (
        "A run of keyboard, alphabet or digit keys is easy to guess: choose another.",
        "连续的键盘、字母或数字序列容易被猜中，请另选一个。",
    ),
    "password.classes": (
        "A password needs {min} of: lower case, upper case, digits, other characters.",
        "密码需包含以下至少 {min} 类：小写字母、大写字母、数字、其他字符。",
    ),
    "password.old_wrong": ("The old password is wrong.", "原密码不正确。"),
    "password.unchanged": ("The new password must differ from the old one.", "新密码不能与原密码相同。"),
    "user.not_found": ("No user {username}.", "没有用户 {username}。"),
    "user.gone": ("This user no longer exists.", "该用户已不存在。"),
    "user.exists": ("This user name is taken.", "该用户名已被使用。"),
    "user.unknown_areas": ("Unknown area(s): {areas}.", "未知区域：{areas}。"),
    "user.last_admin": ("This is the last enabled admin.", "这是最后一个启用的管理员。"),
    "user.delete_self": ("You cannot delete yourself.", "不能删除自己。"),
    "token.not_found": ("No API token {token_id}.", "没有 API 令牌 {token_id}。"),
    "alert.not_found": ("No alert {alert_id}.", "没有告警 {alert_id}。"),
    "alert.invalid_action": ("This alert cannot be {action} now.", "该告警当前不能执行“{action}”。"),
    "alert.conflict": ("The alert kept changing: try again.", "告警正在变化，请重试。"),
    "device.not_found": ("No device {device} at site {site}.", "站点 {site} 没有设备 {device}。"),
    "device.unknown_profile": (
        "Device {device} has profile {profile}, which the API does not know.",
        "设备 {device} 的型号 {profile} 未知。",
    ),
    "profile.not_found": ("No profile {profile}.", "没有设备型号 {profile}。"),
    "history.unknown_points": ("Profile {profile} has no point {points}.", "设备型号 {profile} 没有测点 {points}。"),
    "history.max_points": ("At most {max} points per series.", "每条曲线最多 {max} 个点。"),
    "history.end_before_start": ("The end must be after the start.", "结束时间必须晚于开始时间。"),
    "history.range_too_long": ("The range may span at most {days} days.", "时间范围最多 {days} 天。"),
    "history.too_many_points": ("At most {max} points.", "最多 {max} 个测点。"),
    "env.no_means": (
        "No stored means of device {device} at site {site}.",
        "站点 {site} 的设备 {device} 没有已存的均值。",
    ),
    "gate.not_found": ("Gate {site}/{device} is not known.", "闸门 {site}/{device} 未配置。"),
    "gate.ttl_too_long": ("ttl_s may be at most {max}.", "有效期最多 {max} 秒。"),
    "command.not_found": ("No command {command_id}.", "没有命令 {command_id}。"),
    "report.site_and_area": ("Give a site or an area, not both.", "请选择站点或区域，不能同时选择。"),
    "report.unknown_area": ("Unknown area {area}.", "未知区域 {area}。"),
    "report.bad_date": ("The date does not fit the period.", "日期与周期不符。"),
    "docs.not_found": ("No documentation file {name}.", "没有文档 {name}。"),
    "validation.invalid": ("Field {field} is not valid.", "字段 {field} 无效。"),
    "validation.missing": ("Field {field} is required.", "字段 {field} 必填。"),
    "validation.extra_forbidden": ("Field {field} is not allowed.", "不允许字段 {field}。"),
    "validation.string_too_short": ("Field {field} is too short.", "字段 {field} 太短。"),
    "validation.string_too_long": ("Field {field} is too long.", "字段 {field} 太长。"),
    "validation.string_pattern_mismatch": (
        "Field {field} has characters that are not allowed.",
        "字段 {field} 含有不允许的字符。",
    ),
    "validation.string_type": ("Field {field} must be text.", "字段 {field} 必须是文本。"),
    "validation.int_parsing": ("Field {field} must be a whole number.", "字段 {field} 必须是整数。"),
    "validation.int_type": ("Field {field} must be a whole number.", "字段 {field} 必须是整数。"),
    "validation.float_parsing": ("Field {field} must be a number.", "字段 {field} 必须是数字。"),
    "validation.float_type": ("Field {field} must be a number.", "字段 {field} 必须是数字。"),
    "validation.bool_parsing": ("Field {field} must be true or false.", "字段 {field} 必须是真或假。"),
    "validation.greater_than": ("Field {field} is too small.", "字段 {field} 太小。"),
    "validation.greater_than_equal": ("Field {field} is too small.", "字段 {field} 太小。"),
    "validation.less_than": ("Field {field} is too large.", "字段 {field} 太大。"),
    "validation.less_than_equal": ("Field {field} is too large.", "字段 {field} 太大。"),
    "validation.enum": ("Field {field} is not one of the allowed values.", "字段 {field} 不是允许的取值。"),
    "validation.literal_error": ("Field {field} is not one of the allowed values.", "字段 {field} 不是允许的取值。"),
    "validation.too_long": ("Field {field} has too many items.", "字段 {field} 项数过多。"),
    "validation.too_short": ("Field {field} has too few items.", "字段 {field} 项数过少。"),
    "validation.model_attributes_type": ("The body must be a JSON object.", "请求体必须是 JSON 对象。"),
    "validation.dict_type": ("Field {field} must be an object.", "字段 {field} 必须是对象。"),
    "validation.list_type": ("Field {field} must be a list.", "字段 {field} 必须是列表。"),
    "validation.json_invalid": ("The body is not valid JSON.", "请求体不是有效的 JSON。"),
    "validation.value_error": ("Field {field} is not valid.", "字段 {field} 无效。"),
    # interlocks: the API's and the edge's refusals
    "interlock.busy.other_command": ("Another command runs on this gate.", "该闸门正在执行其他命令。"),
    "interlock.busy.moving": ("The gate is moving (stop it first).", "闸门正在运动（请先停止）。"),
    "interlock.busy.running": ("Command {command} is still running on this gate.", "命令 {command} 仍在该闸门上执行。"),
    "interlock.out_of_limits.range": (
        "Target {target_m} m is outside the gate's range [{low_m}, {high_m}] m.",
        "目标开度 {target_m} m 超出闸门允许范围 [{low_m}, {high_m}] m。",
    ),
    "interlock.out_of_limits.upper_switch": ("The upper limit switch is on.", "全开限位已动作。"),
    "interlock.out_of_limits.lower_switch": ("The lower limit switch is on.", "全关限位已动作。"),
    "interlock.out_of_limits.needs_target": ("Set opening needs a target.", "设定开度需要目标值。"),
    "interlock.out_of_limits.no_target": ("{action} takes no target.", "“{action}”不需要目标值。"),
    "interlock.no_data.state": ("The gate's state could not be read.", "无法读取闸门状态。"),
    "interlock.no_data.level": ("A water level could not be read.", "无法读取水位。"),
    "interlock.no_data.limits": ("The gate's limits are not known.", "闸门限值未知。"),
    "interlock.no_data.no_telemetry": ("No data of this gate has been received.", "尚未收到该闸门的数据。"),
    "interlock.no_data.old_telemetry": ("The gate's last data is {age_s} s old.", "闸门最新数据已是 {age_s} 秒前。"),
    "interlock.no_data.offline": ("The gate is offline: {why}.", "闸门离线：{why}。"),
    "interlock.no_data.points": ("Point(s) {points} not known.", "测点 {points} 未知。"),
    "interlock.local_mode": (
        "The selector is in local: local operators have priority.",
        "闸门处于就地控制，现场操作优先。",
    ),
    "interlock.gate_fault.estop": ("Emergency stop pressed.", "急停按钮已按下。"),
    "interlock.gate_fault.fault_code": ("Fault code {fault_code} ({label}).", "故障代码 {fault_code}（{label}）。"),
    "interlock.gate_fault.overload": ("Motor overload trip.", "电机过载跳闸。"),
    "interlock.gate_fault.power": ("Power lost.", "失去电源。"),
    "interlock.level_difference.opening": (
        "Head {head_m} m is above the {allowed_m} m allowed for opening.",
        "上下游水位差 {head_m} m 超过开闸允许的 {allowed_m} m。",
    ),
    "interlock.level_difference.closing": (
        "Head {head_m} m is above the {allowed_m} m allowed for closing.",
        "上下游水位差 {head_m} m 超过关闸允许的 {allowed_m} m。",
    ),
    "interlock.unknown_device.no_limits": (
        "No limits are configured for this gate.",
        "该闸门未配置限值，不可远程控制。",
    ),
    "interlock.selection.none": ("Select the gate first.", "请先选择闸门。"),
    "interlock.selection.unknown": ("No such selection of this gate by you.", "您没有选择该闸门。"),
    "interlock.selection.used": ("The selection was used by command {command}.", "该选择已被命令 {command} 使用。"),
    "interlock.selection.expired": ("The selection has expired: select again.", "选择已过期，请重新选择。"),
    "interlock.not_writable": ("Point {point} cannot be written.", "测点 {point} 不可写。"),
    "interlock.out_of_limits.write": (
        "The value for {point} is outside its limits or step.",
        "测点 {point} 的设定值超出限值或步长。",
    ),
}

# -- interlocks by name (an edge refusal carries the name and an English reason) -----------------------------------
INTERLOCKS: dict[str, T] = {
    "local_mode": ("Local mode", "就地控制"),
    "gate_fault": ("Gate fault", "闸门故障"),
    "out_of_limits": ("Out of limits", "超出限值"),
    "level_difference": ("Level difference", "水位差超限"),
    "busy": ("Busy", "忙"),
    "stale": ("Command too old", "命令已过期"),
    "no_data": ("No data", "无数据"),
    "unknown_device": ("Unknown device", "未知设备"),
    "role": ("Role may not operate gates", "该角色无权操作闸门"),
    "area": ("Outside your areas", "不在管辖区域内"),
    "selection": ("Selection", "选择"),
    "signature": ("Signature", "签名"),
    "repeated": ("Repeated command id", "命令编号重复"),
    "wrong_site": ("Command for another site", "命令不属于本站点"),
    "late": ("Delivered too late", "命令送达过迟"),
    "not_writable": ("Point not writable", "测点不可写"),
}

COMMAND_STATES: dict[str, T] = {
    "published": ("Published", "已发布"),
    "received": ("Received by the edge", "边缘已收到"),
    "not_delivered": ("Not delivered", "未送达"),
    "accepted": ("Accepted", "已接受"),
    "progress": ("In progress", "执行中"),
    "completed": ("Completed", "已完成"),
    "rejected": ("Rejected", "被拒绝"),
    "failed": ("Failed", "失败"),
    "timed_out": ("Timed out", "超时"),
    "pending": ("Pending", "等待中"),
    "sent": ("Sent", "已发送"),
    "open": ("Open", "全开"),
    "close": ("Close", "全关"),
    "stop": ("Stop", "停止"),
    "set_opening": ("Set opening", "设定开度"),
    "write": ("Write set point", "写入设定值"),
    "cancel": ("Cancel", "取消"),
}

QUALITY: dict[str, T] = {
    "good": ("Good", "正常"),
    "uncertain": ("Uncertain", "可疑"),
    "bad": ("Bad", "无效"),
    "unknown": ("Unknown", "未知"),
}

# Quality reasons: exact texts the edge writes, then patterns (a regular expression with named groups, and the text
# with those names in braces) for reasons that carry values.
QUALITY_REASONS: dict[str, T] = {
    MAINTENANCE: ("Maintenance", "维护中"),
    CALIBRATION: ("Calibration", "校准中"),
    "instrument stopped (HJ 212 flag F)": ("Instrument stopped (HJ 212 flag F)", "仪器停运（HJ 212 标记 F）"),
    "manually entered value (HJ 212 flag S)": ("Manually entered value (HJ 212 flag S)", "手工输入值（HJ 212 标记 S）"),
    "instrument fault (HJ 212 flag D)": ("Instrument fault (HJ 212 flag D)", "仪器故障（HJ 212 标记 D）"),
    "above the instrument's upper measuring limit, the value is a floor (HJ 212 flag T)": (
        "Above the instrument's upper measuring limit (HJ 212 flag T)",
        "超出仪器测量上限，数值为下限值（HJ 212 标记 T）",
    ),
    "communication between instrument and data logger abnormal (HJ 212 flag B)": (
        "Instrument to data logger communication abnormal (HJ 212 flag B)",
        "仪器与数采仪通讯异常（HJ 212 标记 B）",
    ),
    "modbus timeout": ("Modbus timeout", "Modbus 超时"),
    "the edge agent is stopping": ("The edge agent is stopping", "边缘代理正在停止"),
    "the gate still reads moving": ("The gate still reads moving", "闸门仍显示在运动"),
}
QUALITY_REASON_PATTERNS: list[tuple[str, T]] = [
    (
        r"^(?P<value>\S+) outside the range \[(?P<low>[^,]+), (?P<high>[^\]]+)\]$",
        ("{value} outside [{low}, {high}]", "{value} 超出量程 [{low}, {high}]"),
    ),
    (
        r"^outside the range \[(?P<low>[^,]+), (?P<high>[^\]]+)\]$",
        ("Outside [{low}, {high}]", "超出量程 [{low}, {high}]"),
    ),
    (r"^unknown HJ 212 data flag (?P<flag>.+)$", ("Unknown HJ 212 data flag {flag}", "未知的 HJ 212 数据标记 {flag}")),
    (r"^(?P<why>.+); value sent (?P<value>.+)$", ("{why}; value sent {value}", "{why}；上报值 {value}")),
]

DEVICE_STATE_WORDS: dict[str, T] = {
    "online": ("Online", "在线"),
    "stale": ("Stale", "数据停滞"),
    "offline": ("Offline", "离线"),
    "unknown": ("Unknown", "未知"),
}
# The labels of coded point values (a profile point's ``states``), as the catalogue profiles write them
POINT_STATES: dict[str, T] = {
    "none": ("none", "无"),
    "normal": ("normal", "正常"),
    "motor overload": ("motor overload", "电机过载"),
    "phase loss": ("phase loss", "缺相"),
    "encoder fault": ("encoder fault", "编码器故障"),
    "overtravel": ("overtravel", "超行程"),
    "stall": ("stall", "堵转"),
    "emergency stop": ("emergency stop", "急停"),
    "deficiency alarm": ("deficiency alarm", "缺氧报警"),
    "enrichment alarm": ("enrichment alarm", "富氧报警"),
    "first-level alarm": ("first-level alarm", "一级报警"),
    "second-level alarm": ("second-level alarm", "二级报警"),
    "detector fault": ("detector fault", "探测器故障"),
}
STATE_REASON_WORDS: dict[str, T] = {
    "sampling": ("Sampling", "正常采集"),
    "no_sample": ("No new data", "无新数据"),
    "agent_offline": ("Edge agent gone", "边缘代理离线"),
    "device_offline": ("Device unreachable", "设备无法连接"),
    "never_heard": ("Never heard", "从未上报"),
    "silent_too_long": ("Silent too long", "长时间无数据"),
}
SEVERITIES: dict[str, T] = {
    "info": ("Info", "提示"),
    "warning": ("Warning", "警告"),
    "critical": ("Critical", "严重"),
}
ALERT_STATES: dict[str, T] = {
    "normal": ("Normal", "正常"),
    "active_unack": ("Active, unacknowledged", "活动未确认"),
    "active_ack": ("Active, acknowledged", "活动已确认"),
    "cleared_unack": ("Cleared, unacknowledged", "已恢复未确认"),
    "shelved": ("Shelved", "已搁置"),
}

# -- points: base names; HJ 212 statistics and O2-corrected names are composed ---------------------------------------
POINTS: dict[str, T] = {
    "alarm_level": ("Alarm level", "报警级别"),
    "battery": ("Battery", "电池电量"),
    "cmd_close": ("Close command", "关闸命令"),
    "cmd_fault_reset": ("Fault reset command", "故障复位命令"),
    "cmd_open": ("Open command", "开闸命令"),
    "cmd_stop": ("Stop command", "停止命令"),
    "co": ("CO", "一氧化碳"),
    "cod": ("COD", "化学需氧量"),
    "codmn": ("Permanganate index", "高锰酸盐指数"),
    "conc": ("Concentration", "浓度"),
    "conductivity": ("Conductivity", "电导率"),
    "detector_fault": ("Detector fault", "探测器故障"),
    "do": ("Dissolved oxygen", "溶解氧"),
    "dust": ("Particulates", "颗粒物"),
    "estop": ("Emergency stop", "急停"),
    "fault_code": ("Fault code", "故障代码"),
    "fire_alarm": ("Fire alarm", "火灾报警"),
    "flow": ("Flow", "流量"),
    "flue_flow": ("Flue-gas flow", "烟气流量"),
    "flue_humidity": ("Flue-gas humidity", "烟气湿度"),
    "flue_pressure": ("Flue-gas pressure", "烟气压力"),
    "flue_temp": ("Flue-gas temperature", "烟气温度"),
    "flue_velocity": ("Flue-gas velocity", "烟气流速"),
    "gate_opening": ("Gate opening", "闸门开度"),
    "humidity": ("Humidity", "湿度"),
    "lel": ("Combustible gas", "可燃气体浓度"),
    "level_down": ("Downstream level", "下游水位"),
    "level_up": ("Upstream level", "上游水位"),
    "limit_closed": ("Closed limit switch", "全关限位"),
    "limit_open": ("Open limit switch", "全开限位"),
    "maintenance": ("Maintenance", "维护状态"),
    "modbus_devices_offline": ("Modbus devices offline", "Modbus 设备离线数"),
    "modbus_exceptions": ("Modbus exceptions", "Modbus 异常响应数"),
    "modbus_health": ("Modbus device health", "Modbus 设备健康状况"),
    "modbus_problem": ("Modbus problem", "Modbus 问题"),
    "motor_current": ("Motor current", "电机电流"),
    "moving_close": ("Closing", "正在关闸"),
    "moving_open": ("Opening", "正在开闸"),
    "nh3_n": ("Ammonia nitrogen", "氨氮"),
    "no2": ("NO2", "二氧化氮"),
    "noise_laeq": ("Noise LAeq", "等效声级"),
    "noise_lmax": ("Noise Lmax", "最大声级"),
    "nox": ("NOx", "氮氧化物"),
    "o2": ("Oxygen", "氧含量"),
    "o3": ("O3", "臭氧"),
    "oldest_unconfirmed_age_s": ("Oldest unconfirmed message age", "最早未确认消息时长"),
    "outbox_bytes": ("Outbox size", "发件箱大小"),
    "outbox_disk_free_bytes": ("Outbox disk free", "发件箱磁盘剩余空间"),
    "outbox_dropped": ("Outbox dropped", "发件箱丢弃数"),
    "outbox_fault": ("Outbox fault", "发件箱故障"),
    "outbox_memory_dropped": ("Dropped from memory", "内存中丢弃数"),
    "outbox_messages": ("Outbox messages", "发件箱消息数"),
    "outbox_quota_full": ("Outbox quota full", "发件箱配额已满"),
    "outbox_quota_problem": ("Outbox quota problem", "发件箱配额问题"),
    "outbox_resent": ("Resent", "重发数"),
    "outbox_unwritten": ("Not written to disk", "未写入磁盘数"),
    "outbox_write_failures": ("Write failures", "写入失败数"),
    "outbox_write_problem": ("Write problem", "写入问题"),
    "overload": ("Motor overload", "电机过载"),
    "ph": ("pH", "pH"),
    "pm10": ("PM10", "PM10"),
    "pm25": ("PM2.5", "PM2.5"),
    "power_ok": ("Power OK", "电源正常"),
    "pressure": ("Air pressure", "气压"),
    "remote_mode": ("Remote mode", "远程模式"),
    "sensor_link_connected": ("Sensor link connected", "传感器链路已连接"),
    "sensor_link_down_s": ("Sensor link down for", "传感器链路中断时长"),
    "sensor_link_losses": ("Sensor link losses", "传感器链路中断次数"),
    "sensor_link_problem": ("Sensor link problem", "传感器链路问题"),
    "sensor_link_sessions_lost": ("Sensor sessions lost", "传感器会话丢失次数"),
    "sensor_readings_missed": ("Sensor readings missed", "传感器漏收数"),
    "smoke_density": ("Smoke density", "烟雾浓度"),
    "so2": ("SO2", "二氧化硫"),
    "station_code": ("Station code", "站点编码"),
    "target_opening": ("Target opening", "目标开度"),
    "temperature": ("Temperature", "温度"),
    "tn": ("Total nitrogen", "总氮"),
    "tp": ("Total phosphorus", "总磷"),
    "turbidity": ("Turbidity", "浊度"),
    "unit_load": ("Unit load", "机组负荷"),
    "uplink_sessions_taken_over": ("Uplink sessions taken over", "上行链路会话被顶替次数"),
    "uplink_takeover_problem": ("Uplink session taken over", "上行链路会话被顶替"),
    "uptime": ("Uptime", "运行时长"),
    "water_temp": ("Water temperature", "水温"),
    "wind_dir": ("Wind direction", "风向"),
    "wind_speed": ("Wind speed", "风速"),
}
_PERIODS: dict[str, T] = {"minute": ("minute", "分钟"), "hour": ("hourly", "小时"), "day": ("daily", "日")}
_STATS: dict[str, T] = {
    "avg": ("mean", "均值"),
    "min": ("minimum", "最小值"),
    "max": ("maximum", "最大值"),
    "total": ("total", "累计量"),
}
_DERIVED = re.compile(
    r"^(?P<base>.+?)(?P<zs>_zs)?(?:_(?P<period>minute|hour|day)_(?P<stat>avg|min|max|total)|_(?P<tail>total|load))?$"
)

UNITS_ZH: dict[str, str] = {"s": "秒", "kg": "千克", "°": "°"}  # others are shown as sent, in both languages

PROFILES: dict[str, str] = {
    "air_quality_station": "环境空气质量自动监测站",
    "edge_agent": "边缘代理运行状态（发件箱、传感器链路）",
    "fire_detector": "火灾/烟雾探测器（MQTT）",
    "flue_gas_cems": "烟气排放连续监测系统（CEMS）",
    "flue_gas_cems_hj212": "烟气 CEMS（HJ 212 数采仪）",
    "gas_detector": "可燃气体探测器（%LEL，MQTT）",
    "noise_meter": "环境噪声监测仪（MQTT）",
    "oxygen_detector": "氧气探测器（%VOL，MQTT）",
    "sluice_gate_plc": "水闸 PLC（启闭机控制）",
    "toxic_gas_detector": "有毒气体探测器（mg/m³，MQTT）",
    "wastewater_outlet_hj212": "废水排放口（HJ 212 数采仪）",
    "water_quality_station": "地表水水质自动监测站",
}


# -- what the catalogue and the API can show -------------------------------------------------------------------------
def point_names(profiles: Iterable[Profile]) -> set[str]:
    """Every point name a catalogue profile gives (measured, HJ 212 statistics and O2-corrected, derived)."""
    names: set[str] = set()
    for p in profiles:
        names |= set(p.measured_names()) | set(p.units) | {pt.name for pt in p.points}
        if p.hj212 is not None:
            names |= {pt.name for pt in p.hj212.points}
        if p.derived is not None:
            names |= {d.name for d in p.derived.points}
    return names


def point_title(name: str) -> T | None:
    """A point's title in both languages: a base name's own, or composed (O2-corrected, period statistics, totals,
    loads); None when the base is not known."""
    if name in POINTS:
        return POINTS[name]
    m = _DERIVED.match(name)
    if m is None or m["base"] not in POINTS:
        return None
    en, zh = POINTS[m["base"]]
    if m["zs"]:
        en, zh = f"{en} (O2-corrected)", f"{zh}（折算）"
    if m["period"]:
        (pe, pz), (se, sz) = _PERIODS[m["period"]], _STATS[m["stat"]]
        en, zh = f"{en}, {pe} {se}", f"{zh}{pz}{sz}"
    elif m["tail"] == "total":
        en, zh = f"{en}, total", f"{zh}累计量"
    elif m["tail"] == "load":
        en, zh = f"{en} load", f"{zh}排放速率"
    return en, zh


def error_codes() -> set[str]:
    """Every error code the API can answer with."""
    found: set[str] = set(STATUS_CODES.values()) | {"request.failed", "server.error", "validation.invalid"}
    found |= set(RULE_CODES) | set(INTERLOCK_REASON_CODES) | set(API_REASON_CODES)
    found |= {f"interlock.{i.value}" for i in Interlock}
    for path in Path(__file__).parent.glob("*.py"):
        found |= set(re.findall(r"""code=f?"([a-z_]+\.[a-z_.]+)\"""", path.read_text(encoding="utf-8")))
    return found


def point_state_labels(profiles: Iterable[Profile]) -> set[str]:
    """Every label of a coded point value (``states``) in the profiles."""
    out: set[str] = set()
    for profile in profiles:
        points = profile.points if profile.protocol != "hj212" else []
        for point in points:
            out.update((getattr(point, "states", None) or {}).values())
    return out


def catalogue(lang: str) -> dict[str, object]:
    """The catalogue of one language (``en`` or ``zh-CN``): what the console loads."""
    i = LANGUAGES.index(lang)
    profiles = dict(load_catalogue())
    rules: list[Rule] = load_rules([PACKS])

    def pick(table: dict[str, T]) -> dict[str, str]:
        return {k: v[i] for k, v in sorted(table.items())}

    errors = pick(ERRORS)
    for name, (en, zh) in INTERLOCKS.items():  # interlock.<name>: the refusal of that interlock, no detail
        errors.setdefault(f"interlock.{name}", (en, zh)[i])
    points = {}
    for name in sorted(point_names(profiles.values())):
        title = point_title(name)
        if title is not None:
            points[name] = title[i]
    units = sorted({u for p in profiles.values() for u in p.units.values() if u})
    return {
        "language": lang,
        "errors": dict(sorted(errors.items())),
        "interlocks": pick(INTERLOCKS),
        "command_states": pick(COMMAND_STATES),
        "quality": pick(QUALITY),
        "quality_reasons": pick(QUALITY_REASONS),
        "quality_reason_patterns": [[pattern, texts[i]] for pattern, texts in QUALITY_REASON_PATTERNS],
        "device_states": pick(DEVICE_STATE_WORDS),
        "state_reasons": pick(STATE_REASON_WORDS),
        "point_states": pick(POINT_STATES),
        "severities": pick(SEVERITIES),
        "alert_states": pick(ALERT_STATES),
        "points": points,
        "units": {u: UNITS_ZH.get(u, u) if lang == "zh-CN" else u for u in units},
        "profiles": {n: (p.title or n) if lang == "en" else PROFILES.get(n, "") for n, p in sorted(profiles.items())},
        # the rule packs' own titles: ``title`` and ``title_zh`` of each rule
        "rules": {r.id: r.title if lang == "en" else r.title_zh for r in sorted(rules, key=lambda r: r.id)},
    }


def render(lang: str) -> str:
    return json.dumps(catalogue(lang), ensure_ascii=False, indent=1, sort_keys=False) + "\n"


def write(folder: Path = FOLDER) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for lang in LANGUAGES:
        path = folder / f"{lang}.json"
        path.write_text(render(lang), encoding="utf-8")
        out.append(path)
    return out


if __name__ == "__main__":
    for written in write(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER):
        print(written)
